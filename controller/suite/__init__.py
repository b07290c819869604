"""The chaos suite's API, without pytest: what a suite's tests import.

    from faultline.controller.suite import FaultType, RecoveryTimer, StateValidator

FaultInjector (inject_disconnect / inject_latency / inject_packet_loss on real agents),
RecoveryTimer and RecoveryMetrics (RTO, marks from kernel events), StateValidator (order
integrity, positions), FaultType (the scorecard's fault categories), ScenarioResult. The
pytest plugin (faultline.controller.pytest_plugin) gives them as fixtures.
"""

from faultline.controller.model.scenario import FaultType
from faultline.controller.suite.injector import FaultInjector
from faultline.controller.suite.recovery_timer import RecoveryMetrics, RecoveryTimer
from faultline.controller.suite.results import ScenarioResult
from faultline.controller.suite.state import StateValidator

__all__ = ["FaultInjector", "FaultType", "RecoveryMetrics", "RecoveryTimer", "ScenarioResult", "StateValidator"]
