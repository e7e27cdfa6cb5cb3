// A loaded index and its model, answering "where was this photo taken": describe the photo with the
// model that described the database (same size, same normalisation, the fast inference path), find
// its nearest database descriptors (exact, or the HNSW graph re-ranked exactly), estimate the
// position from them. Used in-process by `vgl localize` and inside the service's worker thread.
import * as torch from '../torch/index.ts';
import type { Tensor } from '../torch/index.ts';
import { readNpy } from '../data/npy.ts';
import { databaseSquaredNorms, searchExact } from '../eval/search.ts';
import { isDataInitialised } from '../models/types.ts';
import { resolveModel, ModelSpecSchema, type AssembledModel } from '../models/assemble.ts';
import { openIndex, type IndexImage, type ModelReference, type OpenedIndex } from './index-store.ts';
import { inputFormatOf, prepareImage, type InputFormat } from './input.ts';
import type { ImageInput } from '../data/image.ts';
import { HnswIndex, candidatesFor, rerank, type RankedRows } from '../eval/approximate.ts';
import { estimatePosition, type Match, type PositionEstimate } from './estimate.ts';

type Log = (line: string) => void;

/** One retrieved database image. */
export interface LocalizedMatch extends Match {
  rank: number;
  file: string;
}

export interface Localization {
  matches: LocalizedMatch[];
  estimate: PositionEstimate | null;
}

/** The network an index reference names (run, checkpoint or spec), on the CPU; logs which weights file it loaded. */
export async function modelOfReference(ref: ModelReference, where: string, log: Log = () => undefined): Promise<AssembledModel> {
  const device = torch.defaultDevice();
  let model: AssembledModel;
  if (ref.source === 'run' && ref.run !== undefined) model = await resolveModel({ run: ref.run, checkpoint: ref.checkpoint }, device);
  else if (ref.source === 'checkpoint' && ref.checkpoint !== undefined) model = await resolveModel({ checkpoint: ref.checkpoint }, device);
  else if (ref.source === 'spec' && ref.spec !== undefined) {
    const spec = ModelSpecSchema.safeParse(ref.spec);
    if (!spec.success) throw new Error(`${where}: model.spec is not a vgl model spec (${spec.error.issues[0].message})`);
    model = await resolveModel({ spec: spec.data }, device);
    if (isDataInitialised(model.net.aggregation)) {
      model.net.dispose();
      throw new Error(`${where}: an untrained ${ref.aggregation} head is initialised from data and cannot be rebuilt; index a trained run (--run) instead`);
    }
  } else throw new Error(`${where}: model.source "${ref.source}" without its ${ref.source === 'spec' ? 'spec' : ref.source}`);
  if (model.net.dim !== ref.descriptorDim) {
    model.net.dispose();
    throw new Error(`${where}: the model now gives ${model.net.dim}-d descriptors, the index holds ${ref.descriptorDim}-d ones; rebuild the index`);
  }
  log(`model: ${model.checkpoint !== undefined ? `${model.checkpoint} (the weights ${where} records)` : model.loaded}`);
  return model;
}

export interface LocalizerOptions {
  /** Metres within which a match agrees with the best one (default 25, the soft-positive radius). */
  radius?: number;
  log?: Log;
}

export class Localizer {
  private constructor(
    readonly index: OpenedIndex,
    readonly format: InputFormat,
    private readonly forward: (images: Tensor) => Tensor,
    private readonly database: Tensor,
    /** The database rows' squared norms, kept: one query's exact search then reads the matrix once. */
    private readonly databaseSq: Tensor,
    private readonly databaseHost: Float32Array,
    private readonly hnsw: HnswIndex | null,
    private readonly release: () => Promise<void>,
    readonly radius: number,
  ) {}

  /** Opens an index folder (or an opened index) with its model. Call close() when done. */
  static async open(indexOrDir: string | OpenedIndex, options: LocalizerOptions = {}): Promise<Localizer> {
    const index = typeof indexOrDir === 'string' ? await openIndex(indexOrDir) : indexOrDir;
    const { meta, files } = index;
    const { net } = await modelOfReference(meta.model, files.meta, options.log);
    const { data } = await readNpy(files.descriptors);
    let hnsw: HnswIndex | null = null;
    if (meta.search.kind === 'hnsw') {
      const s = meta.search;
      hnsw = HnswIndex.load(files.hnsw!, meta.dim, s);
      if (hnsw.size !== meta.count) throw new Error(`${files.hnsw}: ${hnsw.size} vectors in the graph, ${files.meta} says ${meta.count}; rebuild the index`);
    }
    const database = torch.keep(torch.tensor(data, [meta.count, meta.dim]));
    const databaseSq = torch.keep(databaseSquaredNorms(database));
    // The fast inference path stays set up (folded BatchNorm) for the localizer's lifetime.
    let done!: () => void;
    const held = new Promise<void>((resolve) => { done = resolve; });
    let signalReady!: () => void;
    const ready = new Promise<void>((resolve) => { signalReady = resolve; });
    let forward!: (images: Tensor) => Tensor;
    const running = net.fastInference(async (f) => {
      forward = f;
      signalReady();
      await held;
    }, { precision: meta.model.precision });
    try {
      await Promise.race([ready, running]); // running only settles early when setting up failed
    } catch (e) {
      net.dispose();
      database.dispose();
      databaseSq.dispose();
      throw e;
    }
    const release = async () => {
      done();
      await running;
      net.dispose();
      database.dispose();
      databaseSq.dispose();
    };
    return new Localizer(index, inputFormatOf(meta.model), forward, database, databaseSq, data, hnsw, release, options.radius ?? 25);
  }

  get count(): number {
    return this.index.meta.count;
  }

  /** Descriptors [count, dim] of `count` prepared images laid out one after another. */
  describe(inputs: Float32Array, count: number): Float32Array {
    const { height, width } = this.format.size;
    if (inputs.length !== count * 3 * height * width) throw new Error(`describe: ${inputs.length} values for ${count} images of 3x${height}x${width}`);
    return torch.tidy(() => this.forward(torch.tensor(inputs, [count, 3, height, width])).toFloat32Array());
  }

  /** The k nearest database rows of each descriptor (row-major [count, dim]). */
  search(descriptors: Float32Array, k: number): RankedRows {
    const dim = this.index.meta.dim;
    const m = descriptors.length / dim;
    const kk = Math.min(k, this.count);
    if (this.hnsw !== null) {
      const c = Math.min(candidatesFor(kk), this.count);
      return rerank(this.databaseHost, dim, descriptors, this.hnsw.candidates(descriptors, c, 1), c, kk);
    }
    const exact = torch.tidy(() => searchExact(this.database, torch.tensor(descriptors, [m, dim]), { k: kk, databaseSquaredNorms: this.databaseSq }));
    // Distances again from the differences: ‖q‖² + ‖d‖² − 2q·d loses the small ones (a photo of a
    // database image itself) to cancellation, and they decide the estimate's weights.
    return rerank(this.databaseHost, dim, descriptors, exact.indices, exact.k, exact.k);
  }

  /** Matches and the estimated position of each described photo. */
  localizeDescriptors(descriptors: Float32Array, k: number): Localization[] {
    const r = this.search(descriptors, k);
    const images: readonly IndexImage[] = this.index.images;
    return Array.from({ length: r.count }, (_, q) => {
      const matches: LocalizedMatch[] = [];
      for (let j = 0; j < r.k; j++) {
        const id = r.indices[q * r.k + j];
        if (id < 0) continue;
        const im = images[id];
        matches.push({ rank: matches.length, id, file: im.file, east: im.east, north: im.north, distance: r.distances[q * r.k + j] });
      }
      return { matches, estimate: estimatePosition(matches, this.radius) };
    });
  }

  /** Decodes, describes and localizes photos (paths or uploaded bytes). */
  async localize(inputs: readonly ImageInput[], k: number): Promise<Localization[]> {
    const prepared = await Promise.all(inputs.map((i) => prepareImage(i, this.format)));
    const per = prepared[0]?.length ?? 0;
    const batch = new Float32Array(per * prepared.length);
    prepared.forEach((p, i) => batch.set(p, i * per));
    const out: Localization[] = [];
    for (let i0 = 0; i0 < inputs.length; i0 += 16) {
      const n = Math.min(16, inputs.length - i0);
      out.push(...this.localizeDescriptors(this.describe(batch.subarray(i0 * per, (i0 + n) * per), n), k));
    }
    return out;
  }

  async close(): Promise<void> {
    await this.release();
  }
}
