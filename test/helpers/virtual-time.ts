/** Virtual time for tests: the simulator's, re-exported. */
export { ManualScheduler, ManualTimers, settle } from "../../src/sim/virtual-time.js";
