"""Upload the release directory to the Hugging Face Hub (package.push_to_hub).

Why inside the package stage and not a command of its own: the push is the one thing a user turns it on for,
and DVC reruns the stage exactly when what it would push changed (the model, the card's inputs, the package
params). DVC cannot track the upload itself, so it is the stage's last step, after the release directory is
complete: a failed push fails the stage (exit 2) with the release intact, DVC does not record the stage as
done, and the next `dvc repro` packages and pushes again. `dvc repro -f package` pushes an unchanged release.
Files on the Hub that the release no longer has are left there (never delete what this project did not write).
"""
from __future__ import annotations

from pathlib import Path

from stages.common.errors import UserError
from stages.common.params import PackageParams

TOKEN_HINT = "set HF_TOKEN to a write token (https://huggingface.co/settings/tokens) or run `hf auth login`"


def check_token() -> None:
    """Refuse before anything is written when no token is configured: the push could only fail."""
    from huggingface_hub import get_token

    if get_token() is None:
        raise UserError(f"package.push_to_hub: no Hugging Face token found; {TOKEN_HINT}, or set "
                        "package.push_to_hub: false")


def network_errors() -> tuple[type[BaseException], ...]:
    """What a failed upload raises: OSError (offline mode, HfHubHTTPError for 401/403/404/5xx answers) and the
    hub client's HTTP library's base error, which its connection errors (refused, DNS, timeout) derive from.
    That library changed across huggingface_hub versions (requests, httpx, httpx2), so it is taken from
    HfHubHTTPError's bases; tests/test_sharing.py pushes to a closed port to keep this honest."""
    from huggingface_hub.errors import HfHubHTTPError

    http_bases = tuple(base for base in HfHubHTTPError.__mro__ if base.__name__ == "HTTPError")
    return (OSError, *http_bases)


def push_release(release: Path, package: PackageParams) -> str:
    """create_repo (exist_ok) + upload_folder of the whole release; returns the commit's URL."""
    from huggingface_hub import HfApi, constants

    api = HfApi()
    try:
        repo = api.create_repo(package.hub_repo_id, repo_type="model", private=package.hub_private, exist_ok=True)
        commit = api.upload_folder(repo_id=repo.repo_id, repo_type="model", folder_path=str(release),
                                   commit_message="Upload the ja-textclf release (package stage)")
    except network_errors() as err:
        reason = " ".join(f"{type(err).__name__}: {err}".split())[:300]
        raise UserError(
            f"package.push_to_hub: could not push {release} to {package.hub_repo_id} at {constants.ENDPOINT} "
            f"({reason}); the release directory is complete. Check the network (and HF_HUB_OFFLINE / HF_ENDPOINT) "
            f"and that the token may write to that repo ({TOKEN_HINT}), then run `dvc repro` again, or set "
            "package.push_to_hub: false") from None
    return commit.commit_url
