// tap-summary.mjs LOG EXIT_CODE: the end of a check run, from tap's TAP log. Prints each
// failed and skipped test with the names of the tests it is in (a log's tail is often all
// that is read of it), then the one line "N passed, N failed[, N skipped]".
import { readFileSync } from "node:fs";

const [logPath, exitCode] = process.argv.slice(2);
const lines = readFileSync(logPath, "utf8").split("\n");

const depthOf = (line) => Math.floor((/^ */.exec(line)?.[0].length ?? 0) / 4);
const open = []; // open[d]: the subtest announced at depth d
const failures = [];
const skips = [];

for (let i = 0; i < lines.length; i++) {
  const line = lines[i];
  const depth = depthOf(line);
  const body = line.trim();
  const announced = /^# Subtest: (.*)$/.exec(body);
  if (announced) {
    open.length = depth;
    open[depth] = announced[1];
    continue;
  }
  const result = /^(not ok|ok) \d+ - (.*?)(?: # (.*))?$/.exec(body);
  if (!result) continue;
  const path = [...open.slice(0, depth), result[2]].join(" > ");
  const directive = result[3] ?? "";
  if (result[1] === "not ok" && !/^(TODO|SKIP)\b/i.test(directive)) {
    // A failure fails every test it is in: name only the innermost.
    if (failures.some((f) => f.path.startsWith(`${path} > `))) continue;
    // The YAML block under a failure says what was found and where; keep its start.
    const detail = [];
    if (lines[i + 1]?.trim() === "---") {
      for (let j = i + 2; j < lines.length && lines[j].trim() !== "..."; j++) {
        if (/^\s*(stdio|cwd|command|args|externalID|- --|- \/)/.test(lines[j])) continue;
        if (detail.length < 12) detail.push(lines[j].trim());
      }
    }
    failures.push({ path, detail });
  } else if (/^SKIP\b/i.test(directive)) {
    skips.push(`${path} (${directive})`);
  }
}

for (const skip of skips) console.log(`check: skipped: ${skip}`);
for (const failure of failures) {
  console.log(`check: FAILED: ${failure.path}`);
  for (const d of failure.detail) console.log(`check:     ${d}`);
}

// tap closes with "# { total: N, pass: N, fail: N, ... }" over every assertion it ran.
const totals = lines.filter((l) => /^# \{ total: \d+/.test(l)).at(-1) ?? "";
const count = (key) => Number((new RegExp(`${key}: (\\d+)`).exec(totals) ?? [])[1] ?? 0);
const pass = count("pass");
let fail = count("fail");
const skipped = count("skip") + count("todo");
if (!totals || (exitCode !== "0" && fail === 0)) fail += 1; // tap failed without counting it
console.log(`${pass} passed, ${fail} failed` + (skipped ? `, ${skipped} skipped` : ""));
