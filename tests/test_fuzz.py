"""Issue 10: a seeded fuzz campaign over every command, bounded to about a minute.

Mutated scenes, submissions, checkpoints, configs and arguments (truncation, bit flips in data
chunks, dtype/shape/attribute changes, NaN/Inf, out-of-range values); each command must exit 0
with a correct output or exit 1 with one ``autoice: error:`` line, never a traceback, a hang or a
leftover temporary. ``bench/fuzz.py`` runs the same engine at scale and prints the table.
"""

from __future__ import annotations

import pytest

from autoice.cli.main import COMMANDS as CLI_COMMANDS
from fuzzing import COMMANDS, make_corpus, run_campaign

#: cases per command in the suite (train and predict cost most)
PER_COMMAND = {"inspect": 8, "prepare": 6, "train": 2, "predict": 5, "score": 5, "validate": 5, "show": 5,
               "report": 3, "synth": 6, "demo": 5, "serve": 4,
               "download": 3, "export": 4, "label": 4, "mosaic": 4, "evaluate": 4}  # fmt: skip


def test_every_command_is_fuzzed():
    """Adding a command means adding it to tests/fuzzing.py."""
    assert set(COMMANDS) == set(CLI_COMMANDS) == set(PER_COMMAND)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("fuzz"))


def test_fuzz_campaign(corpus):
    campaign = run_campaign(corpus, seed=0, per_command=PER_COMMAND, timeout=60)
    failures = "\n".join(f"{o.case.command} ({o.case.what}): {o.why}\n    autoice {' '.join(o.argv)}"
                         for o in campaign.failures())  # fmt: skip
    assert not failures, f"\n{campaign.table()}\n{failures}"
    assert len(campaign.outcomes) == sum(PER_COMMAND.values())
    codes = {o.code for o in campaign.outcomes}
    assert {0, 1} <= codes, codes  # the mutations make both good and bad inputs


def test_the_judge_catches_a_traceback_and_a_leftover(corpus, tmp_path):
    """The fuzzer itself must be able to fail: a command raising a bare exception or leaving a .tmp."""
    from fuzzing import Case, run_case

    def leaves(folder):
        (folder / ".x.nc.host.1.abc.tmp").write_text("")
        return ["validate", str(corpus.submission), "--data", str(corpus.reference)]

    assert run_case(Case("validate", "leftover", leaves), tmp_path / "a").why.startswith("temporary file left")
    bad = run_case(Case("inspect", "bug", lambda f: ["inspect", "--json", str(corpus.test)]), tmp_path / "b")
    assert bad.clean
    from unittest import mock

    with mock.patch("autoice.inspection.describe", side_effect=ZeroDivisionError("boom")):
        out = run_case(Case("inspect", "bug", lambda f: ["inspect", str(corpus.test)]), tmp_path / "c")
    assert not out.clean and out.why == "traceback: ZeroDivisionError: boom"
