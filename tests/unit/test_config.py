"""contracts/resilience_config.yaml: loaded, checked, errors naming file, line, field, range."""

from __future__ import annotations

import pytest

from faultline.controller.model import config
from faultline.controller.model.schema import SchemaError


def test_the_shipped_file_loads_with_the_seeds_targets():
    c = config.load()
    assert (c.rto_target_s, c.max_data_loss_ratio, c.max_retry_attempts) == (30, 0.05, 5)
    assert set(c.chaos_config()) == {"rto_target_s", "max_data_loss_ratio", "max_retry_attempts",
                                     "base_retry_delay_s", "max_retry_delay_s", "connection_timeout_s",
                                     "request_timeout_s", "rate_limit_per_minute"}


def test_left_out_keys_keep_defaults(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("recovery:\n  rto_target_s: 2\n")
    c = config.load(p)
    assert c.rto_target_s == 2 and c.max_retry_attempts == config.ResilienceConfig().max_retry_attempts


@pytest.mark.parametrize(("text", "line", "field", "allowed"), [
    ("recovery:\n  rto_target_s: -1\n", 2, "recovery.rto_target_s", "a number from 0.1 to 86400"),
    ("recovery:\n  max_data_loss_ratio: 1.5\n", 2, "recovery.max_data_loss_ratio", "from 0 to 1"),
    ("retry:\n  max_retry_attempts: 2.5\n", 2, "retry.max_retry_attempts", "an integer"),
    ("retry:\n  max_retry_attempts: 3\n  max_retry_attempts: 4\n", 3, "retry.max_retry_attempts", "given once"),
    ("degradation:\n  enabled: maybe\n", 2, "degradation.enabled", "true or false"),
    ("timeouts:\n  conection_timeout_s: 3\n", 2, "timeouts.conection_timeout_s", "allowed: connection_timeout_s"),
    ("retry:\n  base_retry_delay_s: 10\n  max_retry_delay_s: 5\n", 3, "retry.max_retry_delay_s",
     "at least retry.base_retry_delay_s"),
    ("recovery: [1, 2]\n", 1, "recovery", "a mapping"),
    ("recovery:\n  rto_target_s: [\n", 3, "", "valid YAML"),
])
def test_errors_name_file_line_field_and_range(tmp_path, text, line, field, allowed):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(SchemaError) as e:
        config.load(p)
    assert (e.value.line, e.value.path) == (line, field) and allowed in str(e.value)
    assert str(e.value).startswith(f"{p}:{line}: ")
