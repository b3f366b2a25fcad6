"""federation.worker and federation.supernode without a deployment: bad arguments are one line
and exit 2; the SuperNode's two fixed waits, and only those, are shortened."""

from __future__ import annotations

import pytest

from federation import supernode, worker


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--runtime-api-address", "127.0.0.1", "--insecure"], "'127.0.0.1'"),
        (["--runtime-api-address", "127.0.0.1:0", "--insecure"], "'127.0.0.1:0'"),
        (["--runtime-api-address", ":9100", "--insecure"], "':9100'"),
        (["--runtime-api-address", "h:1", "--insecure", "--poll-seconds", "0"], "got 0.0"),
        (["--runtime-api-address", "h:1", "--insecure", "--max-tasks", "0"], "got 0"),
        (["--runtime-api-address", "h:1", "--root-certificates", "/nonexistent.pem"],
         "'/nonexistent.pem'"),
    ],
)  # fmt: skip
def test_worker_refuses_bad_arguments_in_one_line(
    args: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert worker.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and named in err, err


def test_worker_poll_seconds_checked() -> None:
    with pytest.raises(ValueError, match="poll_seconds=0"):
        worker.Worker("127.0.0.1:1", insecure=True, poll_seconds=0)


@pytest.mark.parametrize(
    ("args", "named"),
    [(["--idle-pull-seconds", "0"], "idle_pull_seconds"),
     (["--reply-poll-seconds", "nan"], "reply_poll_seconds"),
     (["--idle-pull-seconds", "61"], "61")],
)  # fmt: skip
def test_supernode_refuses_bad_waits_in_one_line(
    args: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert supernode.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and named in err, err


def test_supernode_shortens_only_flowers_two_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(supernode._time, "sleep", slept.append)
    waits = supernode.Waits(idle_pull_seconds=0.25, reply_poll_seconds=0.05)
    for seconds in (3, 0.5, 1, 0.1, 2.5):
        waits.sleep(seconds)
    assert slept == [0.25, 0.05, 1, 0.1, 2.5]
    assert waits.monotonic is supernode._time.monotonic  # the rest is the real module


def test_supernode_patches_the_flower_it_was_written_for() -> None:
    """The two sleeps it shortens are in Flower's SuperNode loop as written against."""
    import inspect
    from importlib.metadata import version

    import flwr.supernode.start_client_internal as internal

    assert version("flwr") == supernode.FLOWER_VERSION
    source = inspect.getsource(internal)
    assert source.count("time.sleep(3)") == 1 and source.count("time.sleep(0.5)") == 2
    # its one pull_objects call takes Flower's default backoff (the launcher shortens it)
    assert source.count("pull_objects(") == 1 and "initial_backoff" not in source
