// The kernels of the VM matrix (test/vm/kernels.json) that a suite runs on, narrowed by
// PFNIC_KERNELS (a comma-separated list of names) when it is set.
import { readFileSync } from 'node:fs';
import path from 'node:path';

interface MatrixEntry { name: string; debug?: boolean; time_scale?: number }

function readMatrix(top: string): MatrixEntry[] {
  return JSON.parse(readFileSync(path.join(top, 'test/vm/kernels.json'), 'utf8')) as MatrixEntry[];
}

/**
 * The names of the matrix's kernels, in order. @p debug: whether the debug kernel (built with
 * the kernel's runtime checkers, and several times slower) is among them.
 */
export function matrixKernels(top: string, { debug }: { debug: boolean }): string[] {
  const only = process.env.PFNIC_KERNELS?.split(',').filter(Boolean);
  return readMatrix(top).filter((k) => (debug || !k.debug) && (!only || only.includes(k.name))).map((k) => k.name);
}

/** Whether @p kernel is a debug kernel of the matrix (built with the kernel's checkers). */
export function isDebugKernel(top: string, kernel: string): boolean {
  return readMatrix(top).find((k) => k.name === kernel)?.debug === true;
}

/**
 * Seconds a group's guest of a release kernel may run (times timeScale()) before the rig
 * takes it for hung. The longest group takes five minutes when it has the machine to itself;
 * CI runs two suites at once.
 */
export const groupSeconds = 600;

/** How many times longer than a release kernel @p kernel may take to run a guest (kernels.json). */
export function timeScale(top: string, kernel: string): number {
  return readMatrix(top).find((k) => k.name === kernel)?.time_scale ?? 1;
}

/** The newest release kernel of the matrix (its last entry that is not a debug kernel). */
export function newestKernel(top: string): string {
  const release = readMatrix(top).filter((k) => !k.debug);
  return release[release.length - 1]!.name;
}

/** The matrix's debug kernels (built with the kernel's checkers), narrowed by PFNIC_KERNELS. */
export function debugKernels(top: string): string[] {
  const release = new Set(matrixKernels(top, { debug: false }));
  return matrixKernels(top, { debug: true }).filter((k) => !release.has(k));
}

/**
 * Whether the full tier runs: PFNIC_TIER=full runs every group on every kernel of the matrix.
 * The default tier, which CI runs, runs groups whose code paths do not change with the kernel
 * on the newest release kernel only (Group.newestOnly), and shrinks what only measures.
 */
export function fullTier(): boolean {
  return process.env.PFNIC_TIER === 'full';
}

/**
 * The release kernels a suite of the control plane runs on: in the default tier the oldest
 * and the newest (what the kernels between them expose to it lies between theirs), in the
 * full tier all of them; narrowed by PFNIC_KERNELS as matrixKernels() is.
 */
export function edgeKernels(top: string): string[] {
  const release = readMatrix(top).filter((k) => !k.debug).map((k) => k.name);
  const edges = new Set([release[0], release[release.length - 1]]);
  return matrixKernels(top, { debug: false }).filter((k) => fullTier() || edges.has(k));
}
