"""contracts/resilience_config.yaml: the targets scenarios assert and the clients' settings."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from faultline import contracts
from faultline.controller.model.schema import Bool, Map, Num, SchemaError, check_file, line_of

DEFAULT_PATH = contracts.HERE / "resilience_config.yaml"
DAY_S = 86_400.0


@dataclass(frozen=True)
class ResilienceConfig:
    rto_target_s: float = 30.0
    max_data_loss_ratio: float = 0.05
    max_retry_attempts: int = 5
    base_retry_delay_s: float = 1.0
    max_retry_delay_s: float = 30.0
    connection_timeout_s: float = 10.0
    request_timeout_s: float = 5.0
    rate_limit_per_minute: int = 100
    api_pacing_per_s: int = 50   # IB's API limit per client: past it, error 100 (the lab gateway enforces it)
    circuit_breaker_failure_threshold: int = 5
    circuit_breaker_reset_timeout_s: float = 60.0
    degradation_enabled: bool = True
    max_stale_market_data_s: float = 5.0
    health_check_interval_s: float = 10.0
    health_check_timeout_s: float = 5.0
    health_check_unhealthy_threshold: int = 3

    def chaos_config(self) -> dict[str, float | int]:
        """The flat dict the users' chaos suite calls chaos_config."""
        keys = ("rto_target_s", "max_data_loss_ratio", "max_retry_attempts", "base_retry_delay_s",
                "max_retry_delay_s", "connection_timeout_s", "request_timeout_s", "rate_limit_per_minute")
        d = asdict(self)
        return {k: d[k] for k in keys}


SECONDS = Num(0.001, DAY_S)
SCHEMA = Map({
    "recovery": Map({"rto_target_s": Num(0.1, DAY_S), "max_data_loss_ratio": Num(0.0, 1.0)}),
    "retry": Map({"max_retry_attempts": Num(0, 1000, integer=True), "base_retry_delay_s": SECONDS,
                  "max_retry_delay_s": SECONDS}),
    "timeouts": Map({"connection_timeout_s": SECONDS, "request_timeout_s": SECONDS}),
    "rate_limit": Map({"rate_limit_per_minute": Num(1, 1_000_000, integer=True),
                       "api_pacing_per_s": Num(1, 100_000, integer=True)}),
    "circuit_breaker": Map({"failure_threshold": Num(1, 1000, integer=True), "reset_timeout_s": SECONDS}),
    "degradation": Map({"enabled": Bool(), "max_stale_market_data_s": SECONDS}),
    "health_checks": Map({"interval_s": SECONDS, "timeout_s": SECONDS,
                          "unhealthy_threshold": Num(1, 1000, integer=True)}),
})
# (section, key) in the file -> field of ResilienceConfig
NAMES = {
    ("recovery", "rto_target_s"): "rto_target_s", ("recovery", "max_data_loss_ratio"): "max_data_loss_ratio",
    ("retry", "max_retry_attempts"): "max_retry_attempts", ("retry", "base_retry_delay_s"): "base_retry_delay_s",
    ("retry", "max_retry_delay_s"): "max_retry_delay_s",
    ("timeouts", "connection_timeout_s"): "connection_timeout_s",
    ("timeouts", "request_timeout_s"): "request_timeout_s",
    ("rate_limit", "rate_limit_per_minute"): "rate_limit_per_minute",
    ("rate_limit", "api_pacing_per_s"): "api_pacing_per_s",
    ("circuit_breaker", "failure_threshold"): "circuit_breaker_failure_threshold",
    ("circuit_breaker", "reset_timeout_s"): "circuit_breaker_reset_timeout_s",
    ("degradation", "enabled"): "degradation_enabled",
    ("degradation", "max_stale_market_data_s"): "max_stale_market_data_s",
    ("health_checks", "interval_s"): "health_check_interval_s",
    ("health_checks", "timeout_s"): "health_check_timeout_s",
    ("health_checks", "unhealthy_threshold"): "health_check_unhealthy_threshold",
}


def load(path: Path = DEFAULT_PATH) -> ResilienceConfig:
    """Checked in full before it is used; keys left out keep their defaults."""
    raw = check_file(path, SCHEMA)
    values = {NAMES[(section, key)]: v for section, keys in raw.items() for key, v in keys.items()}
    cfg = ResilienceConfig(**values)
    for bad, key, allowed, got in (
        (cfg.base_retry_delay_s > cfg.max_retry_delay_s, "retry.max_retry_delay_s",
         "at least retry.base_retry_delay_s", cfg.max_retry_delay_s),
        (cfg.health_check_timeout_s > cfg.health_check_interval_s, "health_checks.timeout_s",
         "at most health_checks.interval_s", cfg.health_check_timeout_s),
    ):
        if bad:
            raise SchemaError(str(path), line_of(path, key), key, allowed, got)
    return cfg
