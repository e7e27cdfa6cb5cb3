// Progress bars for long work (rendering, importing, extracting, training): rate and ETA on stderr.
import { SingleBar, Presets } from 'cli-progress';

export interface Progress {
  /** Adds n finished items (default 1); fields fill the bar's extra {name} slots. */
  tick(n?: number, fields?: Record<string, string>): void;
  stop(): void;
}

export interface ProgressOptions {
  /** Show the bar (default: when stderr is a terminal). */
  show?: boolean;
  /** Unit of the rate, e.g. 'img' (img/s) or 'it'. */
  unit?: string;
  /** Extra fields shown after the ETA, e.g. ['loss'] → "| loss {loss}". */
  fields?: string[];
}

const off: Progress = { tick: () => undefined, stop: () => undefined };

/** A bar over `total` items; a no-op when not shown. */
export function progressBar(label: string, total: number, options: ProgressOptions = {}): Progress {
  if (!(options.show ?? process.stderr.isTTY === true)) return off;
  const extra = (options.fields ?? []).map((f) => ` | ${f} {${f}}`).join('');
  const bar = new SingleBar({
    format: `${label} |{bar}| {value}/{total} {percentage}% | {rate} ${options.unit ?? 'it'}/s | ETA {eta_formatted}${extra}`,
    stream: process.stderr, etaBuffer: 50, hideCursor: true,
  }, Presets.shades_classic);
  const start = performance.now();
  let done = 0;
  bar.start(total, 0, { rate: '-', ...Object.fromEntries((options.fields ?? []).map((f) => [f, '-'])) });
  return {
    tick(n = 1, fields = {}) {
      done += n;
      const seconds = Math.max(1e-3, (performance.now() - start) / 1000);
      bar.update(done, { rate: (done / seconds).toFixed(1), ...fields });
    },
    stop: () => bar.stop(),
  };
}
