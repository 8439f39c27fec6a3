// Parse every AsyncAPI document given on the command line with the official parser.
// Prints each diagnostic; exits 1 if any document has an error (severity 0).
import { readFileSync } from 'node:fs';
import { Parser } from '@asyncapi/parser';

const parser = new Parser();
let failed = 0;
for (const file of process.argv.slice(2)) {
  const { document, diagnostics } = await parser.parse(readFileSync(file, 'utf8'));
  const errors = diagnostics.filter((d) => d.severity === 0);
  for (const d of diagnostics) {
    console.log(`${file}: severity ${d.severity} ${d.code}: ${d.message} at ${d.path.join('.')}`);
  }
  if (!document || errors.length > 0) failed += 1;
  else console.log(`${file}: valid AsyncAPI ${document.version()}`);
}
process.exit(failed > 0 ? 1 : 0);
