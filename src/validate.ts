/**
 * Argument checks of the public API: a caller who passes the wrong kind of
 * thing (`db.put("k", { a: 1 })`, `db.revoke(5)`) gets a `TypeError` that
 * names the argument and says what it must be and what it got —
 * `value must be a string or Uint8Array, got object` — before anything is
 * changed, instead of a failure deep inside (`src.subarray is not a
 * function`). Values of the right kind but out of etcd's range (a TTL too
 * large, a compacted revision) are the store's business and get etcd's
 * errors there.
 *
 * @module
 */

/** What a value is, in words for an error message. */
export function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (value instanceof Uint8Array) return "Uint8Array";
  if (typeof value === "object") {
    const name = (value as object).constructor?.name;
    return name && name !== "Object" ? name : "object";
  }
  return typeof value;
}

function fail(name: string, wants: string, value: unknown): never {
  throw new TypeError(`${name} must be ${wants}, got ${kindOf(value)}`);
}

/** A key or value: a string or bytes. */
export function checkBytes(name: string, value: unknown): void {
  if (typeof value !== "string" && !(value instanceof Uint8Array)) {
    fail(name, "a string or Uint8Array", value);
  }
}

/** An options argument: absent or a plain object. */
export function checkOptions(name: string, value: unknown): void {
  if (value === undefined) return;
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    fail(name, "an object", value);
  }
}

/**
 * A revision or count: a number (whether etcd accepts its value — negative,
 * compacted, future — is the store's check, in etcd's words).
 */
export function checkNumber(name: string, value: unknown): void {
  if (typeof value !== "number") fail(name, "a number", value);
}

/** A lease ID: a bigint (etcd's IDs take 63 bits). */
export function checkLeaseId(name: string, value: unknown): void {
  if (typeof value !== "bigint") fail(name, "a bigint lease ID", value);
}

/** A boolean flag of an options object, when given. */
function checkFlag(name: string, value: unknown): void {
  if (value !== undefined && typeof value !== "boolean") {
    fail(name, "a boolean", value);
  }
}

/** The key selection of get, delete, scan and watch. */
export function checkKeySelection(
  key: unknown,
  options: unknown,
  optionsName = "options",
): void {
  checkBytes("key", key);
  checkOptions(optionsName, options);
  if (options === undefined) return;
  const o = options as Record<string, unknown>;
  if (o.rangeEnd !== undefined) {
    checkBytes(`${optionsName}.rangeEnd`, o.rangeEnd);
  }
  checkFlag(`${optionsName}.prefix`, o.prefix);
  checkFlag(`${optionsName}.fromKey`, o.fromKey);
  checkFlag(`${optionsName}.prevKv`, o.prevKv);
  for (
    const field of [
      "revision",
      "limit",
      "minModRevision",
      "maxModRevision",
      "minCreateRevision",
      "maxCreateRevision",
      "startRevision",
      "pageSize",
    ]
  ) {
    if (o[field] !== undefined) {
      checkNumber(`${optionsName}.${field}`, o[field]);
    }
  }
}

/** The arguments of a put (also each put of a txn). */
export function checkPut(key: unknown, value: unknown, options: unknown): void {
  checkBytes("key", key);
  checkBytes("value", value);
  checkOptions("options", options);
  if (options === undefined) return;
  const o = options as Record<string, unknown>;
  if (o.lease !== undefined) checkLeaseId("options.lease", o.lease);
  checkFlag("options.prevKv", o.prevKv);
  checkFlag("options.ignoreValue", o.ignoreValue);
  checkFlag("options.ignoreLease", o.ignoreLease);
}

/** A txn request: an object whose parts, when given, are arrays. */
export function checkTxnRequest(request: unknown): void {
  checkOptions("request", request);
  if (request === undefined) fail("request", "an object", request);
  const r = request as Record<string, unknown>;
  for (const part of ["compare", "success", "failure"]) {
    if (r[part] !== undefined && !Array.isArray(r[part])) {
      fail(`request.${part}`, "an array", r[part]);
    }
  }
}

/** A lease TTL in seconds: a number. */
export function checkTtlSeconds(value: unknown): void {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    fail("ttlSeconds", "a finite number", value);
  }
}
