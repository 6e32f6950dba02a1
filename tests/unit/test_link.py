"""Link emulation, edge slowdown and traffic tallies, with a fake sleep and hand-made sums."""

from __future__ import annotations

import pytest

from hierfl.config import HierConfig
from hierfl.edge.link import LinkEmulator, LinkSpec, slow_down
from hierfl.errors import ConfigError, UnknownNameError
from hierfl.results.traffic import TrafficLog


class FakeSleep:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def test_seconds_are_latency_plus_bits_over_rate():
    spec = LinkSpec(uplink_bps=8000, downlink_bps=16000, latency_s=0.05)
    assert spec.seconds(1000, "up") == pytest.approx(0.05 + 1.0)  # 8000 bits at 8000 bit/s
    assert spec.seconds(1000, "down") == pytest.approx(0.05 + 0.5)
    assert spec.seconds(0, "up") == pytest.approx(0.05)


def test_downlink_zero_means_the_uplink_rate_and_all_zero_means_off():
    assert LinkSpec(8000).seconds(1000, "down") == pytest.approx(1.0)
    assert not LinkSpec().enabled
    assert LinkSpec(latency_s=0.1).seconds(10**9, "up") == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [({"uplink_bps": -1}, "bitrate"), ({"downlink_bps": float("inf")}, "downlink-bitrate")],
)
def test_bad_spec_names_the_config_key(kwargs, key):
    with pytest.raises(ConfigError) as info:
        LinkSpec(**kwargs)
    assert info.value.key == key


def test_emulator_sleeps_each_message_and_totals():
    sleep = FakeSleep()
    link = LinkEmulator(LinkSpec(8000, 4000, 0.01), sleep=sleep)
    link.transfer(2000, "up")  # 0.01 + 2
    link.transfer(500, "down")  # 0.01 + 1
    assert sleep.calls == pytest.approx([2.01, 1.01])
    assert link.total_s == pytest.approx(3.02)


def test_emulator_off_never_sleeps():
    sleep = FakeSleep()
    link = LinkEmulator(LinkSpec(), sleep=sleep)
    assert link.transfer(10**6, "up") == 0.0
    assert sleep.calls == [] and link.total_s == 0.0


def test_slow_down_sleeps_k_minus_one_times_compute():
    sleep = FakeSleep()
    assert slow_down(0.2, 10.0, sleep=sleep) == pytest.approx(1.8)
    assert sleep.calls == pytest.approx([1.8])
    assert slow_down(0.2, 1.0, sleep=sleep) == 0.0
    assert len(sleep.calls) == 1
    with pytest.raises(ConfigError, match="edge-slowdown"):
        slow_down(0.2, 0.5, sleep=sleep)


def test_traffic_log_per_round_and_per_client_by_hand():
    log = TrafficLog()
    log.begin_round(0, 0)
    log.record(11, "down", 100)
    log.record(12, "down", 100)
    log.record(11, "up", 1000, link_s=0.5)
    log.begin_round(0, 1)
    log.record(11, "down", 100)
    log.record(12, "up", 3000, link_s=1.5)
    out = log.summary(names={11: 0, 12: 1})
    assert (out["uplink_bytes"], out["downlink_bytes"]) == (4000, 300)
    assert out["emulated_link_s"] == pytest.approx(2.0)
    assert [(r["round"], r["uplink_bytes"], r["downlink_bytes"]) for r in out["per_round"]] == [
        (0, 1000, 200),
        (1, 3000, 100),
    ]
    assert out["per_round"][0]["downlink_messages"] == 2
    parts = ("code_bytes", "weight_bytes_up", "weight_bytes_down", "control_bytes")
    assert out["per_client"]["0"] == {
        "uplink_bytes": 1000,
        "downlink_bytes": 200,
        "uplink_messages": 1,
        "downlink_messages": 2,
        "emulated_link_s": 0.5,
        **dict.fromkeys((*parts, "eval_bytes"), 0),  # no parts given
    }
    assert out["per_client"]["1"]["uplink_bytes"] == 3000
    assert log.totals() == (4000, 300)


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"bitrate": -1.0}, "bitrate"),
        ({"downlink-bitrate": "nan"}, "downlink-bitrate"),
        ({"latency": -0.1}, "latency"),
        ({"edge-slowdown": 0.5}, "edge-slowdown"),
    ],
)
def test_config_rejects_bad_link_values(values, key):
    with pytest.raises(ConfigError) as info:
        HierConfig.from_mapping(values).validate()
    assert info.value.key == key


def test_config_rejects_unknown_codec_listing_the_allowed():
    with pytest.raises(UnknownNameError) as info:
        HierConfig.from_mapping({"codec": "int4"}).validate()
    assert info.value.allowed == ["fp16", "fp32", "int8"]


def test_link_spec_from_config():
    config = HierConfig.from_mapping({"bitrate": "1e6", "latency": "0.02"}).validate()
    spec = LinkSpec.from_config(config)
    assert spec.seconds(125_000, "down") == pytest.approx(1.02)
