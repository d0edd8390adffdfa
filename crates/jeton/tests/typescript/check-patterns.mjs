// Every `pattern` of the OpenAPI document (argument 1) compiles as a
// browser compiles `<input pattern>`: with the RegExp `v` flag. Run by
// crates/jeton/tests/api/typescript_client.rs.
import { readFileSync } from "node:fs";

const patterns = [];
const walk = (value, at) => {
  if (Array.isArray(value)) {
    value.forEach((item, index) => walk(item, `${at}/${index}`));
  } else if (value !== null && typeof value === "object") {
    for (const [key, item] of Object.entries(value)) {
      if (key === "pattern" && typeof item === "string") patterns.push([at, item]);
      else walk(item, `${at}/${key}`);
    }
  }
};
walk(JSON.parse(readFileSync(process.argv[2], "utf8")), "#");
const bad = [];
for (const [at, pattern] of patterns) {
  try {
    new RegExp(pattern, "v");
  } catch (error) {
    bad.push(`${at}: ${error.message}`);
  }
}
if (bad.length > 0) {
  console.error(bad.join("\n"));
  process.exit(1);
}
console.log(`${patterns.length} patterns compile with the v flag`);
