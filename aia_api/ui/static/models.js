// Models with their versions, aliases and latest drift; datasets with their columns.

import { api } from "./api.js";
import { $, h, when } from "./dom.js";

function drift(report) {
  if (!report) return "no report";
  const share = `${Math.round((report.drifted_share || 0) * 100)} % of features`;
  return `${report.drifted ? "drifted" : "stable"} (v${report.version}, ${share}, ${when(report.created_at)})`;
}

export async function refreshModels() {
  const page = await api("GET", "/v1/ml/models?limit=50");
  const rows = await Promise.all(
    page.items.map(async (model) => {
      const name = encodeURIComponent(model.name);
      const reports = await api("GET", `/v1/ml/models/${name}/drift?limit=1`).catch(() => ({ items: [] }));
      const aliases = Object.entries(model.aliases || {}).map(([alias, version]) => `${alias} → v${version}`);
      return h(
        "tr",
        { dataset: { model: model.name } },
        h("td", {}, model.name),
        h("td", {}, model.task),
        h("td", {}, `v${model.latest_version}`),
        h("td", {}, aliases.join(", ") || "none"),
        h("td", {}, drift(reports.items[0])),
      );
    }),
  );
  $("#models tbody").replaceChildren(...rows);
  const datasets = await api("GET", "/v1/ml/datasets?limit=50");
  $("#datasets tbody").replaceChildren(
    ...datasets.items.map((dataset) =>
      h(
        "tr",
        { dataset: { datasetId: dataset.id } },
        h("td", {}, dataset.name),
        h("td", {}, String(dataset.rows)),
        h(
          "td",
          {},
          h("ul", { className: "columns" }, ...dataset.columns.map((c) => h("li", {}, h("code", {}, c.name), ` ${c.kind}`))),
        ),
        h("td", {}, when(dataset.created_at)),
      ),
    ),
  );
}
