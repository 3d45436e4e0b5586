// Validates an AsyncAPI 3.0.0 document (the file named on the command line) against the
// official JSON schema shipped in @asyncapi/specs. Prints the errors and exits 1 when invalid.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import Ajv from "ajv";
import addFormats from "ajv-formats";

const require = createRequire(import.meta.url);
const schema = require("@asyncapi/specs/schemas/3.0.0.json");
const doc = JSON.parse(readFileSync(process.argv[2], "utf8"));

// The AsyncAPI schema uses keywords and formats Ajv's strict mode would refuse to compile, and
// embeds its own copy of the draft-07 meta-schema, so Ajv must not add another one.
const ajv = new Ajv({ strict: false, allErrors: true, meta: false, validateSchema: false });
addFormats(ajv);
const validate = ajv.compile(schema);
if (validate(doc)) {
  console.log("valid AsyncAPI 3.0.0");
} else {
  console.error(JSON.stringify(validate.errors, null, 2));
  process.exit(1);
}
