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
const fileTimes = []; // [file, seconds] for each test file: what CI's time went to

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
  const took = depth === 0 ? /^time=([\d.]+)(ms|s)$/.exec(directive) : null;
  if (took) fileTimes.push([result[2], Number(took[1]) / (took[2] === "ms" ? 1000 : 1)]);
  if (result[1] === "not ok" && !/^(TODO|SKIP)\b/i.test(directive)) {
    // A failure fails every test it is in: name only the innermost.
    if (failures.some((f) => f.path.startsWith(`${path} > `))) continue;
    // The YAML block under a failure says what was found: keep its one-line keys (exitCode,
    // signal, found, wanted, ...) and leave out the long ones (the command's arguments, the
    // source, the stack), which once took all the room.
    const detail = [];
    if (lines[i + 1]?.trim() === "---") {
      const keyIndent = lines[i + 1].indexOf("---");
      for (let j = i + 2; j < lines.length && lines[j].trim() !== "..."; j++) {
        const indent = /^ */.exec(lines[j])[0].length;
        const key = /^\s*([A-Za-z]+):(.*)$/.exec(lines[j]);
        // a t.same() failure says what it found only in its diff: its changed lines
        if (indent === keyIndent && key?.[1] === "diff") {
          for (let k = j + 1; k < lines.length && /^ */.exec(lines[k])[0].length > keyIndent; k++) {
            const changed = lines[k].trim();
            if (/^[-+](?![-+]{2} )/.test(changed) && detail.length < 12) detail.push(`diff ${changed.slice(0, 300)}`);
          }
          continue;
        }
        if (indent !== keyIndent || !key || !key[2].trim() || /^[>|]/.test(key[2].trim())) continue;
        if (/^(stdio|cwd|command|externalID)$/.test(key[1])) continue;
        if (detail.length < 8) detail.push(lines[j].trim());
      }
    }
    failures.push({ path, detail });
  } else if (/^SKIP\b/i.test(directive)) {
    skips.push(`${path} (${directive})`);
  }
}

fileTimes.sort((a, b) => b[1] - a[1]);
const secs = fileTimes.filter(([, t]) => t >= 1).map(([f, t]) => `${f.replace(/^test\//, "")} ${Math.round(t)}s`);
if (secs.length) console.log(`check: files: ${secs.join(", ")}`);
for (const skip of skips) console.log(`check: skipped: ${skip}`);
for (const failure of failures) {
  console.log(`check: FAILED: ${failure.path}`);
  for (const d of failure.detail) console.log(`check:     ${d}`);
}
// What the VM rig said of guests that timed out, hung, or whose kernel reported a problem
// (test/vm/run.sh: exit 124, 125, 126), with the console log each left behind.
for (const line of lines.filter((l) => /^rig: /.test(l) && !/booting it again/.test(l)).slice(-10)) {
  console.log(`check: ${line}`);
}

// tap closes with "# { total: N, pass: N, fail: N, ... }" over every assertion it ran.
const totals = lines.filter((l) => /^# \{ total: \d+/.test(l)).at(-1) ?? "";
const count = (key) => Number((new RegExp(`${key}: (\\d+)`).exec(totals) ?? [])[1] ?? 0);
const pass = count("pass");
let fail = count("fail");
const skipped = count("skip") + count("todo");
if (!totals || (exitCode !== "0" && fail === 0)) fail += 1; // tap failed without counting it
console.log(`${pass} passed, ${fail} failed` + (skipped ? `, ${skipped} skipped` : ""));
