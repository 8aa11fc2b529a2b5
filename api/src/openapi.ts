// The OpenAPI document's shared schemas. Fastify's swagger writes each route's schemas out
// in full, so the document held the MR, the device and the problem document once per route
// that answers with them. Every schema with a title (the model's, control/src/schema.ts, and
// the API's) goes once into components.schemas under that title, and each place it was is
// a $ref to it. A schema derived from a titled one (a partial MR) keeps the title but not the
// content: the one with the most required fields is the title's, the others stay inline.

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

interface OpenApiObject {
  paths?: Record<string, Record<string, unknown>>;
  components?: { schemas?: Record<string, unknown> } & Record<string, unknown>;
}

const isObject = (v: unknown): v is Record<string, Json> => typeof v === 'object' && v !== null && !Array.isArray(v);
const titleOf = (node: Record<string, Json>): string | undefined =>
  typeof node.title === 'string' && /^[A-Za-z0-9._-]+$/.test(node.title) ? node.title : undefined;
const requiredCount = (node: Record<string, Json>): number => (Array.isArray(node.required) ? node.required.length : 0);

/** Each operation's schemas: its replies and its request body. */
function* operations(doc: OpenApiObject): Generator<Record<string, Json>> {
  for (const methods of Object.values(doc.paths ?? {})) {
    for (const op of Object.values(methods)) if (isObject(op)) yield op;
  }
}

/** Moves every titled schema of the document's operations into components.schemas. */
export function shareSchemas<T extends OpenApiObject>(doc: T): T {
  // first, which variant of each title is the title's: the one that requires the most
  const chosen = new Map<string, { text: string; required: number }>();
  const survey = (node: Json): void => {
    if (Array.isArray(node)) { node.forEach(survey); return; }
    if (!isObject(node)) return;
    for (const [k, v] of Object.entries(node)) if (k !== 'example' && k !== 'examples') survey(v);
    const title = titleOf(node);
    if (title === undefined) return;
    const best = chosen.get(title);
    if (!best || requiredCount(node) > best.required) chosen.set(title, { text: JSON.stringify(node), required: requiredCount(node) });
  };
  for (const op of operations(doc)) {
    survey(op.responses ?? null);
    survey(op.requestBody ?? null);
  }

  const shared: Record<string, unknown> = { ...(doc.components?.schemas ?? {}) };
  // then each chosen variant, its own parts shared first, goes into components once
  const share = (node: Json): Json => {
    if (Array.isArray(node)) return node.map(share);
    if (!isObject(node)) return node;
    const title = titleOf(node);
    const isChosen = title !== undefined && !(title in (doc.components?.schemas ?? {})) &&
      chosen.get(title)?.text === JSON.stringify(node);
    const out: Record<string, Json> = {};
    for (const [k, v] of Object.entries(node)) out[k] = k === 'example' || k === 'examples' ? v : share(v);
    if (!isChosen) return out;
    shared[title] ??= out;
    return { $ref: `#/components/schemas/${title}` };
  };
  for (const op of operations(doc)) {
    for (const key of ['responses', 'requestBody'] as const) {
      if (op[key] !== undefined) op[key] = share(op[key]);
    }
  }
  doc.components = { ...doc.components, schemas: shared };
  return doc;
}
