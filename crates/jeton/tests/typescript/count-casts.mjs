// Counts what would let TypeScript code lie about types: `as` (and `<T>x`)
// assertions, `any`, and non-null assertions (`x!`), in the files given.
// Prints one JSON object. Run by crates/jeton/tests/api/typescript_client.rs.
import { readFileSync } from "node:fs";
import ts from "typescript";

const counts = { as: 0, any: 0, nonNull: 0 };
for (const file of process.argv.slice(2)) {
  const source = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.Latest, true);
  const visit = (node) => {
    if (ts.isAsExpression(node) || ts.isTypeAssertionExpression(node) || ts.isSatisfiesExpression(node)) {
      counts.as += 1;
    } else if (node.kind === ts.SyntaxKind.AnyKeyword) {
      counts.any += 1;
    } else if (ts.isNonNullExpression(node)) {
      counts.nonNull += 1;
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
}
console.log(JSON.stringify(counts));
