// Agents and their recent runs.

import { api } from "./api.js";
import { $, h } from "./dom.js";

export async function refreshAgents() {
  const page = await api("GET", "/v1/agents?limit=50");
  const rows = await Promise.all(
    page.items.map(async (agent) => {
      const runs = await api("GET", `/v1/agents/${encodeURIComponent(agent.id)}/runs?limit=5`).catch(() => ({ items: [] }));
      return h(
        "tr",
        { dataset: { agentId: agent.id } },
        h("td", {}, agent.name),
        h("td", {}, agent.type),
        h("td", {}, agent.description || ""),
        h("td", {}, h("ul", {}, ...runs.items.map((run) => h("li", {}, h("code", {}, run.id), ` ${run.status || "gone"}`)))),
      );
    }),
  );
  $("#agents tbody").replaceChildren(...rows);
}
