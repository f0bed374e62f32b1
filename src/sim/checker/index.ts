/** The linearizability checker for key-value histories: the public surface. */

export {
  type CheckOptions,
  type CheckResult,
  type CheckStats,
  checkLinearizable,
  DEFAULT_CHECK_OPTIONS,
  type KeyStats,
  type LinearizableResult,
  type ShrinkMode,
  type UnknownResult,
  type ViolationResult,
} from "./check.js";
export { CheckerError, InvalidCheckOptionError, InvalidHistoryError } from "./errors.js";
export { describeOperation } from "./explain.js";
export {
  type ClientId,
  type Completion,
  completedAt,
  type Failed,
  type History,
  INDETERMINATE,
  type Indeterminate,
  type KvFunction,
  type KvInputs,
  type KvOutputs,
  type Operation,
  type OperationOf,
  partitionByKey,
  type Returned,
  validateHistory,
} from "./history.js";
export { type Applied, applyKv, type KvCall } from "./model.js";
export { HistoryRecorder } from "./recorder.js";
export type { LimitReached, SearchVerdict } from "./search.js";
