// Print {"<declaration file>#<interface>": JSON schema} for each "<file>#<interface>" argument:
// the kind's TypeScript declaration read by ts-json-schema-generator, strict (every interface
// gets additionalProperties: false). generator/validate/crd_schemas.py runs this inside the
// temporary directory where it installed the pinned packages; see README.md beside it.
import { createGenerator } from "ts-json-schema-generator";

const out = {};
for (const spec of process.argv.slice(2)) {
  const [path, type] = spec.split("#");
  const generator = createGenerator({
    path,
    type,
    tsconfig: "tsconfig.json",
    skipTypeCheck: true,
    expose: "export",
    topRef: true,
    additionalProperties: false,
    jsDoc: "none",
    sortProps: true,
  });
  out[spec] = generator.createSchema(type);
}
process.stdout.write(JSON.stringify(out));
