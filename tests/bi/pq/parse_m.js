// Parses Power Query (M) documents with Microsoft's @microsoft/powerquery-parser.
// stdin: a JSON object {name: M text}; stdout: a JSON object {name: null | "error message"}.
"use strict";
const PQP = require("@microsoft/powerquery-parser");

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const documents = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  const results = {};
  for (const [name, text] of Object.entries(documents)) {
    const task = await PQP.TaskUtils.tryLexParse(PQP.DefaultSettings, text);
    results[name] = PQP.TaskUtils.isOk(task) ? null : String(task.error && task.error.message || task.error);
  }
  process.stdout.write(JSON.stringify(results));
}

main().catch((err) => { console.error(err); process.exit(1); });
