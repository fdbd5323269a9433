/**
 * The seeded randomness of the randomized tests: one generator
 * (mulberry32, a tiny 32-bit PRNG, well mixed enough to pick operations)
 * and one way to choose its seed, so every such test prints the seed it ran
 * with and replays it from one environment variable:
 *
 * ```sh
 * REVKV_SEED=1234 deno test -A tests/mvcc_model_test.ts
 * ```
 *
 * @module
 */

/** The environment variable a randomized test takes its seed from. */
export const SEED_ENV = "REVKV_SEED";

/**
 * The seed of this run: `REVKV_SEED` when given (an integer in [0, 2^32)),
 * else a random one. Not printed; see `seedFromEnv`.
 */
export function readSeed(): number {
  const permission = Deno.permissions.querySync({
    name: "env",
    variable: SEED_ENV,
  });
  const text = permission.state === "granted"
    ? Deno.env.get(SEED_ENV)
    : undefined;
  if (text === undefined || text.trim() === "") {
    return crypto.getRandomValues(new Uint32Array(1))[0]!;
  }
  const seed = Number(text);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffff_ffff) {
    throw new RangeError(
      `${SEED_ENV} must be an integer in [0, 2^32): got "${text}"`,
    );
  }
  return seed;
}

/** `readSeed()`, printed with how to replay it, labelled with `name`. */
export function seedFromEnv(name: string): number {
  const seed = readSeed();
  console.log(`${name}: seed ${seed} (replay with ${SEED_ENV}=${seed})`);
  return seed;
}

/** A seeded mulberry32 generator. */
export class Random {
  #state: number;

  /** @param seed any integer; only its low 32 bits count. */
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** A uniform 32-bit unsigned integer. */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** A uniform number in [0, 1). */
  float(): number {
    return this.next() / 0x1_0000_0000;
  }

  /** A uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }

  /** A uniform integer in [low, high]. */
  between(low: number, high: number): number {
    return low + this.int(high - low + 1);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.float() < p;
  }

  /** A uniform element of a non-empty list. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError("pick from an empty list");
    return items[this.int(items.length)]!;
  }

  /** Shuffles `items` in place (Fisher-Yates). */
  shuffle<T>(items: T[]): void {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [items[i], items[j]] = [items[j]!, items[i]!];
    }
  }
}

/** A seeded generator as a function returning uniform numbers in [0, 1). */
export function prng(seed: number): () => number {
  const random = new Random(seed);
  return () => random.float();
}
