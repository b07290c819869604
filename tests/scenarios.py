"""Scenario files for the lab tests: the acking workload between two hosts, a partition."""

from __future__ import annotations

from faultline.controller.env.lab import LabHost

# The workload's reconnect cycle: connect timeout + the largest backoff delay.
CONNECT_TIMEOUT_S, MAX_DELAY_S = 0.3, 1.0


def partition(client: str, server: str, duration_s: float, rto_s: float = 30.0, at_s: float = 1.0,
              real_hosts: dict[str, LabHost] | None = None, port: int = 4002) -> str:
    """Lab mode by default; with real_hosts, the hosts' agents are named as real ones and the
    processes run through `ip netns exec` (what a user with their own hosts would write)."""
    if real_hosts:
        where = "hosts:\n" + "".join(
            f"  {n}: {{agent: '{h.agent}', ipv4: {h.ipv4}, ipv6: '{h.ipv6}', interface: {h.interface}}}\n"
            for n, h in real_hosts.items())

        def run_in(host: str) -> str:
            return f"[ip, netns, exec, {real_hosts[host].netns}, "
    else:
        where = f"lab: [{client}, {server}]\n"

        def run_in(host: str) -> str:
            return "["
    # Real hosts: the processes run on the controller, written out, each in its namespace by ip netns exec.
    host_key = (lambda h: "\n    host: controller") if real_hosts else (lambda h: f"\n    host: {h}")
    return f"""\
title: {client}-{server} partition {duration_s:g} s, RTO {rto_s:g} s
{where}targets: {{rto_s: {rto_s}, max_data_loss_ratio: 0, max_detection_s: 1}}
processes:
  - name: server{host_key(server)}
    command: {run_in(server)}"{{python}}", -m, faultline.examples.workloads.seqload, server,
              --bind, "{{{server}}}", --port, {port}, --stats, "{{run_dir}}/server.json"]
    ready: server-port
  - name: client{host_key(client)}
    command: {run_in(client)}"{{python}}", -m, faultline.examples.workloads.seqload, client,
              --connect, "{{{server}}}", --port, {port}, --stats, "{{run_dir}}/client.json",
              --base-delay, 0.25, --max-delay, {MAX_DELAY_S},
              --connect-timeout, {CONNECT_TIMEOUT_S}, --request-timeout, 0.5]
    ready: flow
probes:
  - name: server-port
    tcp: {{host: "{{{server}}}", port: {port}}}
  - name: flow
    established: {{host: {client}, port: {port}}}
  - name: counts
    command: ["{{python}}", -m, faultline.examples.workloads.seqload, stats, --client, "{{run_dir}}/client.json",
              --server, "{{run_dir}}/server.json"]
    counters: true
steady_state: [server-port, flow]
method:
  - partition: {{a: [{client}], b: [{server}], duration_s: {duration_s}}}
    at_s: {at_s}
  - wait: 1
recovery:
  watch: {{host: {client}, port: {port}}}
  probe: flow
  poll_s: 0.05
  timeout_s: 10
data_loss: counts
"""
