// Split names with a meaning beyond the datasets_vg layout (kept free of imports: the CLI reads them).

/** The sealed split of the real routes: evaluated only for a frozen recipe (see real.ts). */
export const FINAL_SPLIT = 'final';

/** The splits the demo tests on: 'test' (recipe exploration may look at it), 'val' (chooses a recipe) or the sealed final one. */
export const DEMO_SPLITS = ['test', 'val', FINAL_SPLIT] as const;
export type DemoSplit = (typeof DEMO_SPLITS)[number];
