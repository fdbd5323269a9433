/**
 * Errors of the storage layer that carry etcd's texts.
 *
 * @module
 */

import { EtcdError } from "../mvcc/errors.ts";

/** The store is past its quota (etcd's ErrGRPCNoSpace, RESOURCE_EXHAUSTED). */
export class NoSpaceError extends EtcdError {
  constructor() {
    super("etcdserver: mvcc: database space exceeded", 8);
    this.name = "NoSpaceError";
  }
}
