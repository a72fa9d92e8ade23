import type protobuf from 'protobufjs';

/**
 * Envoy's API as a JSON descriptor keeps, besides the types, every annotation of the .proto files:
 * validation rules (`(validate.rules)`), versioning and migration notes (`(udpa.annotations.*)`),
 * and the annotation packages with the extensions of google.protobuf.*Options that declare them.
 * None changes how a message is encoded or decoded, and nothing in fulcrum reads them; they are a
 * third of the descriptor and most of its loading time (each extension is wired into the options
 * types as it is added). This keeps what encoding needs.
 */

/** Packages that only declare annotations; no message of Envoy's API has a field of their types. */
const ANNOTATION_PACKAGES = new Set(['validate', 'udpa.annotations', 'xds.annotations', 'envoy.annotations']);

type Json = { [key: string]: unknown };

/** Custom options are written `(package.extension)...`; built-in ones (`packed`, `default`, `deprecated`) are kept. */
function builtInOptions(options: Json): Json | undefined {
  const kept = Object.entries(options).filter(([key]) => !key.startsWith('('));
  return kept.length > 0 ? Object.fromEntries(kept) : undefined;
}

/** An extension of a descriptor options message (the declaration of an annotation). */
function declaresAnnotation(child: Json): boolean {
  return typeof child.extend === 'string' && /^\.?google\.protobuf\.\w+Options$/.test(child.extend);
}

function isEmptyPackage(node: Json): boolean {
  const nested = node.nested as Json | undefined;
  return nested !== undefined && Object.keys(nested).length === 0 && Object.keys(node).every((k) => k === 'nested' || k === 'options');
}

function stripChildren(children: Json, path: string): Json {
  const out: Json = {};
  for (const [name, child] of Object.entries(children)) {
    const full = path === '' ? name : `${path}.${name}`;
    if (ANNOTATION_PACKAGES.has(full) || declaresAnnotation(child as Json)) continue;
    const stripped = stripNode(child as Json, full);
    // A package left with nothing in it (udpa once its annotations are gone) is left out too.
    if (!isEmptyPackage(stripped)) out[name] = stripped;
  }
  return out;
}

function stripNode(node: Json, path: string): Json {
  const out: Json = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === 'valuesOptions' || key === 'parsedOptions' || key === 'comment') continue;
    if (key === 'options') {
      const kept = builtInOptions(value as Json);
      if (kept) out.options = kept;
    } else if (key === 'nested') out.nested = stripChildren(value as Json, path);
    else if (key === 'fields' || key === 'oneofs') {
      out[key] = Object.fromEntries(Object.entries(value as Json).map(([name, member]) => [name, stripNode(member as Json, path)]));
    } else out[key] = value;
  }
  return out;
}

/** The descriptor without annotations (see above): the same messages, fields, enums and services. */
export function encodingOnly(root: protobuf.INamespace): protobuf.INamespace {
  return stripNode(root as Json, '') as protobuf.INamespace;
}
