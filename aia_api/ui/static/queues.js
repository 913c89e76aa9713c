// Queues and workers, from /status: depth per queue and the workers online on
// each; with what the tenant's own recent tasks say about each queue.

import { api } from "./api.js";
import { $, age, h } from "./dom.js";

export async function refreshQueues(figures) {
  const report = await api("GET", "/status");
  const checks = (report && report.checks) || {};
  const depths = (checks.broker && checks.broker.queue_depths) || {};
  // Across all tenants on a Redis broker; otherwise what the tenant's own tasks say.
  const waits = checks.broker && checks.broker.oldest_waits;
  const online = (checks.workers && checks.workers.online) || {};
  const names = [...new Set([...Object.keys(depths), ...Object.keys(online)])].sort();
  $("#queues tbody").replaceChildren(
    ...names.map((queue) => {
      const mine = figures[queue] || { perMinute: 0, oldest: null };
      const workers = online[queue] || [];
      return h(
        "tr",
        { dataset: { queue } },
        h("td", {}, queue),
        h("td", { className: "depth" }, queue in depths ? String(depths[queue]) : "?"),
        h("td", { className: "oldest" }, age(waits && queue in waits ? waits[queue] : mine.oldest)),
        h("td", {}, String(mine.perMinute)),
        h("td", { className: "workers" }, workers.length ? `${workers.length}: ${workers.join(", ")}` : "none"),
      );
    }),
  );
  const down = Object.entries(checks)
    .filter(([, check]) => !check.ok)
    .map(([name, check]) => `${name}: ${check.error || "down"}`);
  $("#status-summary").textContent = down.length
    ? `Degraded: ${down.join("; ")}`
    : `All dependencies answer (${report ? report.status : "?"}).`;
}
