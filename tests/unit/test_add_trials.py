"""Adding trials to a finished experiment (`--resume --num-samples N`): the bad inputs of the
flag. The run on a real local Ray: tests/e2e/test_add_trials_e2e.py.
"""

from __future__ import annotations

import pytest
from testkit import ROOT

from itwinai_ray.errors import ConfigurationError

SPACE = {"lr": {"type": "loguniform", "lower": 1e-4, "upper": 1e-1}}


def test_random_search_keeps_no_state_to_add_trials_to(tmp_path) -> None:
    from itwinai_ray.backends.ray.restore import extend_search

    with pytest.raises(ConfigurationError, match="keeps no state to continue.*warm_start"):
        extend_search(str(tmp_path), 8)


@pytest.mark.parametrize("args", [["--num-samples", "8"], ["--resume", "--num-samples", "0"]])
def test_num_samples_flag_needs_resume(args, capsys) -> None:
    from itwinai_ray.cli import main

    code = main(["exec-pipeline", "-c", str(ROOT / "tutorials" / "00-digits-pipeline" /
                                            "hpo.yaml"), *args])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "needs --resume and N >= 1" in err
