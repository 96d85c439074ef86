"""The simulated staff acts through the tools like people do: effects visible in the tools."""

from __future__ import annotations

from sandbox.activity import StaffSimulator
from sandbox.server import Sandbox


def test_simulated_staff_leaves_visible_work(sandbox: Sandbox) -> None:
    podio = sandbox.tools["podio"]
    before = len(podio.items("tickets"))
    simulator = StaffSimulator(sandbox, seed=3)
    log = [simulator.step() for _ in range(40)]
    assert simulator.done["new_ticket"] > 0
    assert len(podio.items("tickets")) == before + simulator.done["new_ticket"]
    created = podio.values(simulator.created[0])
    assert created["estatus"] in ("Nuevo", "En atención", "Escalado")
    assert "escuela" not in created  # left for automation T1, as a person would
    assert simulator.done["resolve_jira"] > 0  # seed 3 resolves issues: check one in Jira
    key = next(line.split()[1] for line in log if line.startswith("resolve_jira: ")
               and "resolved" in line)
    issue = sandbox.tools["jira"].issue(key)
    assert issue["fields"]["status"]["statusCategory"]["key"] == "done"
