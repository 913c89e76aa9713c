// Webhook endpoints and their failures; the tenant's dead letters.

import { api } from "./api.js";
import { $, h, when } from "./dom.js";

export async function refreshWebhooks() {
  const page = await api("GET", "/v1/webhooks?limit=50");
  const rows = await Promise.all(
    page.items.map(async (endpoint) => {
      const id = encodeURIComponent(endpoint.id);
      const failed = await api("GET", `/v1/webhooks/${id}/messages?status=failed&limit=50`).catch(() => ({ items: [] }));
      return h(
        "tr",
        { dataset: { endpointId: endpoint.id } },
        h("td", {}, endpoint.url),
        h("td", {}, (endpoint.events || []).join(", ")),
        h("td", {}, endpoint.enabled ? "yes" : `no (${endpoint.disabled_reason || "disabled"})`),
        h("td", {}, when(endpoint.failing_since) || "–"),
        h("td", {}, when(endpoint.last_success_at) || "–"),
        h("td", {}, `${failed.items.length}${failed.next_cursor ? "+" : ""}`),
      );
    }),
  );
  $("#webhooks tbody").replaceChildren(...rows);
  const letters = await api("GET", "/v1/dead-letters?limit=50").catch(() => ({ items: [] }));
  $("#dead-letters tbody").replaceChildren(
    ...letters.items.map((letter) =>
      h("tr", {}, h("td", {}, letter.id), h("td", {}, letter.type), h("td", {}, letter.queue), h("td", {}, letter.reason)),
    ),
  );
}
