/**
 * etcdctl's exit codes and the error that carries one out of a command:
 * a command throws `CliExit(code, message)` and `runCli` prints
 * `Error: <message>` on stderr and returns the code, as etcdctl's
 * `ExitWithError` does.
 *
 * @module
 */

/** Success. */
export const EXIT_SUCCESS = 0;
/** A server (store) error: compacted revision, unknown lease, … */
export const EXIT_ERROR = 1;
/** The client could not be created (here: the store could not be opened). */
export const EXIT_BAD_CONNECTION = 2;
/** Bad input on stdin (txn, watch -i). */
export const EXIT_INVALID_INPUT = 3;
/** A valid flag with an unsupported value (`-w table` for get, `--order=x`). */
export const EXIT_BAD_FEATURE = 4;
/** Interrupted. */
export const EXIT_INTERRUPTED = 5;
/** An I/O error. */
export const EXIT_IO = 6;
/** Wrong arguments (missing key, bad lease ID, …). */
export const EXIT_BAD_ARGS = 128;

/** Ends a command with an exit code and (unless empty) `Error: message`. */
export class CliExit extends Error {
  /**
   * @param code the process exit code.
   * @param message the text after `Error: ` on stderr; empty prints nothing.
   * @param stderrBefore text printed on stderr before `Error: …` (cobra's own report).
   */
  constructor(
    readonly code: number,
    message: string,
    readonly stderrBefore = "",
  ) {
    super(message);
    this.name = "CliExit";
  }
}
