// The OpenAPI document's shared schemas. Fastify's swagger writes each route's schemas out
// in full, so the document held the MR, the device and the problem document once per route
// that answers with them. Every schema with a title (the model's, control/src/schema.ts, and
// the API's) goes once into components.schemas under that title, and each place it was is
// a $ref to it. A schema derived from a titled one (a partial MR) keeps the title but not the
// content: it stays where it is.

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

interface OpenApiObject {
  paths?: Record<string, Record<string, unknown>>;
  components?: { schemas?: Record<string, unknown> } & Record<string, unknown>;
}

const isObject = (v: unknown): v is Record<string, Json> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Moves every titled schema of the document's operations into components.schemas. */
export function shareSchemas<T extends OpenApiObject>(doc: T): T {
  const shared: Record<string, unknown> = { ...(doc.components?.schemas ?? {}) };
  const texts = new Map<string, string>(Object.entries(shared).map(([k, v]) => [k, JSON.stringify(v)]));

  // children first, so that a schema is compared (and stored) with its own parts shared
  const visit = (node: Json): Json => {
    if (Array.isArray(node)) return node.map(visit);
    if (!isObject(node)) return node;
    const out: Record<string, Json> = {};
    for (const [k, v] of Object.entries(node)) out[k] = k === 'example' || k === 'examples' ? v : visit(v);
    const title = out.title;
    if (typeof title !== 'string' || !/^[A-Za-z0-9._-]+$/.test(title)) return out;
    const text = JSON.stringify(out);
    const known = texts.get(title);
    if (known === undefined) {
      texts.set(title, text);
      shared[title] = out;
    } else if (known !== text) {
      return out;
    }
    return { $ref: `#/components/schemas/${title}` };
  };

  for (const methods of Object.values(doc.paths ?? {})) {
    for (const op of Object.values(methods)) {
      if (!isObject(op)) continue;
      for (const key of ['responses', 'requestBody'] as const) {
        if (op[key] !== undefined) op[key] = visit(op[key]);
      }
    }
  }
  doc.components = { ...doc.components, schemas: shared };
  return doc;
}
