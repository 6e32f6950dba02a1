"""The fixed-overhead rule: share of round time lost per message, and the work that hides it."""

from __future__ import annotations

import pytest

from hierfl.errors import ConfigError
from hierfl.runtime import min_work_per_message, overhead_share


def test_share_by_hand():
    # 30 s of work and 10 s per message: 10 / 40 with one message, 20 / 50 with two.
    assert overhead_share(30.0, 10.0) == pytest.approx(0.25)
    assert overhead_share(30.0, 10.0, messages=2) == pytest.approx(0.4)
    assert overhead_share(0.0, 0.0) == 0.0


def test_min_work_meets_the_target_exactly():
    need = min_work_per_message(10.0, 0.1)
    assert need == pytest.approx(90.0)
    assert overhead_share(need, 10.0) == pytest.approx(0.1)
    assert overhead_share(need * 1.01, 10.0) < 0.1


@pytest.mark.parametrize("share", [0.0, 1.0, -0.5])
def test_bad_share(share):
    with pytest.raises(ConfigError, match="max_share"):
        min_work_per_message(1.0, share)


def test_bad_messages():
    with pytest.raises(ConfigError, match="messages"):
        overhead_share(1.0, 1.0, messages=0)
