// `vgl serve`: localization over HTTP (fastify). POST /localize takes a photo (multipart field
// "image"), decodes and checks it here (sharp works off the event loop), queues it for the inference
// worker (worker.ts owns the model) and answers with the top matches and the estimated position.
// GET /health, GET /index, the database positions and thumbnails for the web page (web/), and the
// evaluation explorer's data for a `vgl eval --output-folder` folder. Bad input is a 4xx that says
// what to send instead; nothing a client sends stops the server.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import multipart from '@fastify/multipart';
import sharp, { type Metadata } from 'sharp';
import { openIndex, type OpenedIndex } from './index-store.ts';
import { inputFormatOf, prepareImage } from './input.ts';
import { estimatePosition, type Match } from './estimate.ts';
import { Inference, type InferenceOptions } from './inference.ts';
import { loadEvaluation, evaluationImage, type Evaluation } from './eval-explorer.ts';

export interface ServerLimits {
  /** Largest upload, bytes (default 10 MiB). */
  maxUploadBytes: number;
  /** Largest decoded image, pixels (default 40 megapixels): a small file can expand to gigabytes. */
  maxPixels: number;
  /** Largest top-N a request may ask for (default 50). */
  maxTop: number;
}

export const DEFAULT_LIMITS: ServerLimits = { maxUploadBytes: 10 * 1024 * 1024, maxPixels: 40e6, maxTop: 50 };
const DEFAULT_TOP = 10;
/** Formats sharp decodes that a camera or a browser produces. */
const IMAGE_FORMATS = ['jpeg', 'png', 'webp', 'tiff', 'gif', 'heif', 'avif'];
/** Points sent to the map at most (a spread sample beyond): a browser draws 20,000 easily, not 1,000,000. */
const MAX_MAP_POINTS = 20_000;

/** What the server needs: the opened index, something that finds neighbours, optionally an evaluation. */
export interface ServiceParts {
  index: OpenedIndex;
  inference: Pick<Inference, 'neighbours' | 'stats' | 'queued'>;
  evaluation?: Evaluation;
  limits?: Partial<ServerLimits>;
  radius?: number;
  logger?: boolean;
}

class HttpError extends Error {
  constructor(readonly statusCode: number, message: string) {
    super(message);
  }
}

const WEB = join(dirname(fileURLToPath(import.meta.url)), 'web');
const WEB_FILES: Record<string, string> = { 'app.js': 'text/javascript; charset=utf-8', 'style.css': 'text/css; charset=utf-8' };
const LEAFLET = dirname(createRequire(import.meta.url).resolve('leaflet'));
const LEAFLET_FILES: Record<string, string> = { 'leaflet.js': 'text/javascript; charset=utf-8', 'leaflet.css': 'text/css; charset=utf-8' };

/** A small least-recently-used cache of thumbnails. */
class Thumbnails {
  private readonly cache = new Map<string, Buffer>();
  constructor(private readonly capacity = 512) {}
  async get(path: string, width = 160, height = 120): Promise<Buffer> {
    const key = `${path}|${width}x${height}`;
    const hit = this.cache.get(key);
    if (hit !== undefined) {
      this.cache.delete(key);
      this.cache.set(key, hit);
      return hit;
    }
    const jpeg = await sharp(path, { failOn: 'error' }).resize(width, height, { fit: 'cover' }).jpeg({ quality: 80 }).toBuffer();
    this.cache.set(key, jpeg);
    if (this.cache.size > this.capacity) this.cache.delete(this.cache.keys().next().value!);
    return jpeg;
  }
}

function integerParam(value: unknown, name: string, min: number, max: number): number {
  const n = Number(value);
  if (typeof value !== 'string' || !/^\d+$/.test(value) || n < min || n > max) throw new HttpError(400, `${name} "${String(value)}": expected an integer from ${min} to ${max}`);
  return n;
}

/** The fastify app (not listening): routes, limits, error handling. */
export async function buildServer(parts: ServiceParts): Promise<FastifyInstance> {
  const { index, inference, evaluation } = parts;
  const limits = { ...DEFAULT_LIMITS, ...parts.limits };
  const radius = parts.radius ?? 25;
  const format = inputFormatOf(index.meta.model);
  const thumbnails = new Thumbnails();
  const started = Date.now();
  const app = Fastify({ logger: parts.logger ?? false, bodyLimit: limits.maxUploadBytes + 64 * 1024 });
  await app.register(multipart, { limits: { fileSize: limits.maxUploadBytes, files: 1, fields: 8, parts: 10 } });

  app.setErrorHandler((error: Error & { statusCode?: number; code?: string }, request, reply) => {
    let status = error.statusCode ?? 500;
    let message = error.message;
    if (error.code === 'FST_REQ_FILE_TOO_LARGE') message = `the photo is larger than the limit of ${(limits.maxUploadBytes / 1048576).toFixed(1)} MiB`;
    if (error.code === 'FST_INVALID_MULTIPART_CONTENT_TYPE' || error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      status = 415;
      message = 'send the photo as multipart/form-data in the field "image" (e.g. curl -F image=@photo.jpg)';
    }
    if (status >= 500 && status !== 503) request.log.error(error);
    void reply.status(status).send({ error: message, status });
  });
  app.setNotFoundHandler((request, reply) => {
    void reply.status(404).send({ error: `${request.method} ${request.url}: no such route (see GET /index, POST /localize, GET /health)`, status: 404 });
  });

  // ---- the web page and its assets
  const page = await readFile(join(WEB, 'index.html'));
  app.get('/', async (_req, reply) => reply.type('text/html; charset=utf-8').send(page));
  app.get<{ Params: { file: string } }>('/web/:file', async (req, reply) => {
    const type = WEB_FILES[req.params.file];
    if (type === undefined) throw new HttpError(404, `no web file ${req.params.file}`);
    return reply.type(type).send(await readFile(join(WEB, req.params.file)));
  });
  app.get<{ Params: { file: string } }>('/vendor/leaflet/:file', async (req, reply) => {
    const type = LEAFLET_FILES[req.params.file];
    if (type === undefined) throw new HttpError(404, `no leaflet file ${req.params.file}`);
    return reply.type(type).header('cache-control', 'max-age=86400').send(await readFile(join(LEAFLET, req.params.file)));
  });

  // ---- service state
  app.get('/health', async () => ({
    status: inference.stats.alive ? 'ok' : 'starting',
    uptimeSeconds: (Date.now() - started) / 1000,
    queued: inference.queued,
    served: inference.stats.served, failed: inference.stats.failed, batches: inference.stats.batches, workerRestarts: inference.stats.restarts,
    memory: { rssMB: process.memoryUsage().rss / 1048576, heapUsedMB: process.memoryUsage().heapUsed / 1048576 },
  }));
  // (a loop, not Math.min(...list): a million arguments overflow the stack)
  let bounds: { east: [number, number]; north: [number, number] } | null = null;
  for (const im of index.images) {
    if (bounds === null) bounds = { east: [im.east, im.east], north: [im.north, im.north] };
    bounds.east = [Math.min(bounds.east[0], im.east), Math.max(bounds.east[1], im.east)];
    bounds.north = [Math.min(bounds.north[0], im.north), Math.max(bounds.north[1], im.north)];
  }
  app.get('/index', async () => ({
    dir: index.dir, count: index.meta.count, dim: index.meta.dim, model: index.meta.model, dataset: index.meta.dataset ?? null,
    search: index.meta.search, created: index.meta.created, additions: index.meta.additions, bounds,
    limits: { ...limits, defaultTop: DEFAULT_TOP }, radius, evaluation: evaluation !== undefined,
  }));
  app.get('/index/positions', async () => {
    const count = index.images.length;
    const step = Math.max(1, Math.ceil(count / MAX_MAP_POINTS));
    const ids: number[] = [];
    for (let i = 0; i < count; i += step) ids.push(i);
    return { count, sampled: step > 1, ids, east: ids.map((i) => index.images[i].east), north: ids.map((i) => index.images[i].north) };
  });
  app.get<{ Params: { id: string } }>('/database/:id/thumbnail', async (req, reply) => {
    const id = integerParam(req.params.id, 'database id', 0, index.images.length - 1);
    return sendThumbnail(reply, thumbnails, index.images[id].file);
  });

  // ---- localization
  app.post<{ Querystring: { top?: string } }>('/localize', async (req) => {
    const top = req.query.top === undefined ? DEFAULT_TOP : integerParam(req.query.top, 'top', 1, limits.maxTop);
    if (!req.isMultipart()) throw new HttpError(415, 'send the photo as multipart/form-data in the field "image" (e.g. curl -F image=@photo.jpg)');
    const part = await req.file();
    if (part === undefined) throw new HttpError(400, 'no file in the request: send the photo in the multipart field "image"');
    if (part.fieldname !== 'image') {
      part.file.resume(); // drain it, the answer does not need it
      throw new HttpError(400, `the photo goes in the multipart field "image", not "${part.fieldname}"`);
    }
    const data = await part.toBuffer();
    const name = part.filename || 'upload';
    if (data.length === 0) throw new HttpError(400, `${name}: empty file (0 bytes)`);
    if (!(part.mimetype.startsWith('image/') || part.mimetype === 'application/octet-stream')) {
      throw new HttpError(415, `${name}: type ${part.mimetype} is not an image; send a JPEG, PNG or WebP photo`);
    }
    const t0 = performance.now();
    let info: Metadata;
    try {
      info = await sharp(data).metadata();
    } catch (err) {
      throw new HttpError(400, `${name}: not a readable image (${(err as Error).message.split('\n')[0]})`);
    }
    if (info.format === undefined || !IMAGE_FORMATS.includes(info.format)) throw new HttpError(415, `${name}: format ${info.format ?? 'unknown'} is not supported; send ${IMAGE_FORMATS.join(', ')}`);
    const pixels = (info.width ?? 0) * (info.height ?? 0);
    if (pixels > limits.maxPixels) throw new HttpError(413, `${name}: ${info.width}x${info.height} is more than ${(limits.maxPixels / 1e6).toFixed(0)} megapixels`);
    let input: Float32Array;
    try {
      input = await prepareImage({ name, data }, format);
    } catch (err) {
      throw new HttpError(400, `${name}: not a readable image (${(err as Error).message.split('\n')[0]})`);
    }
    const decodeMs = performance.now() - t0;
    const t1 = performance.now();
    const found = await inference.neighbours(input, top);
    const matches: (Match & { rank: number; file: string; thumbnail: string })[] = [];
    found.indices.forEach((id, rank) => {
      if (id < 0) return; // a graph may give fewer than top
      const im = index.images[id];
      matches.push({ rank, id, file: im.file, east: im.east, north: im.north, distance: found.distances[rank], thumbnail: `/database/${id}/thumbnail` });
    });
    return {
      file: name, image: { width: info.width, height: info.height, format: info.format },
      matches, estimate: estimatePosition(matches, radius),
      timings: { decodeMs, queueAndInferenceMs: performance.now() - t1, describeMs: found.describeMs, searchMs: found.searchMs, batch: found.batch },
    };
  });

  // ---- evaluation explorer
  const needEvaluation = (): Evaluation => {
    if (evaluation === undefined) throw new HttpError(404, 'no evaluation loaded: start vgl serve with --eval <a vgl eval --output-folder>');
    return evaluation;
  };
  app.get('/eval', async () => {
    const ev = needEvaluation();
    return { dir: ev.dir, radius: ev.radius, summary: ev.summary, grids: ev.grids, queries: ev.queries };
  });
  app.get<{ Params: { q: string } }>('/eval/query/:q/thumbnail', async (req, reply) => {
    const ev = needEvaluation();
    const q = integerParam(req.params.q, 'query', 0, ev.queries.length - 1);
    return sendThumbnail(reply, thumbnails, evaluationImage(ev, q)!);
  });
  app.get<{ Params: { q: string; rank: string } }>('/eval/query/:q/prediction/:rank/thumbnail', async (req, reply) => {
    const ev = needEvaluation();
    const q = integerParam(req.params.q, 'query', 0, ev.queries.length - 1);
    const rank = integerParam(req.params.rank, 'rank', 0, Math.max(0, ev.queries[q].predictions.length - 1));
    const path = evaluationImage(ev, q, rank);
    if (path === null) throw new HttpError(404, `query ${q} has no prediction at rank ${rank}`);
    return sendThumbnail(reply, thumbnails, path);
  });
  app.get<{ Params: { name: string } }>('/eval/grids/:name', async (req, reply) => {
    const ev = needEvaluation();
    if (!ev.grids.includes(req.params.name)) throw new HttpError(404, `no grid ${req.params.name}; the grids are ${ev.grids.join(', ') || 'none'}`);
    return reply.type('image/png').send(await readFile(join(ev.dir, 'grids', req.params.name)));
  });
  return app;
}

async function sendThumbnail(reply: FastifyReply, thumbnails: Thumbnails, path: string): Promise<FastifyReply> {
  let jpeg: Buffer;
  try {
    jpeg = await thumbnails.get(path);
  } catch (err) {
    throw new HttpError(404, `image unavailable: ${path} (${(err as Error).message.split('\n')[0]})`);
  }
  return reply.type('image/jpeg').header('cache-control', 'max-age=3600').send(jpeg);
}

export interface ServeOptions extends InferenceOptions {
  index: string;
  port?: number;
  host?: string;
  eval?: string;
  limits?: Partial<ServerLimits>;
  logger?: boolean;
}

export interface RunningService {
  app: FastifyInstance;
  url: string;
  inference: Inference;
  close(): Promise<void>;
}

/** Opens the index (and evaluation), starts the inference worker, listens. */
export async function startService(o: ServeOptions): Promise<RunningService> {
  const index = await openIndex(o.index);
  const evaluation = o.eval !== undefined ? await loadEvaluation(o.eval) : undefined;
  const inference = await Inference.start(index.dir, o);
  try {
    const app = await buildServer({ index, inference, evaluation, limits: o.limits, radius: o.radius, logger: o.logger });
    const url = await app.listen({ port: o.port ?? 8080, host: o.host ?? '127.0.0.1' });
    return {
      app, url, inference,
      async close() {
        // In-flight requests get a grace period; then every connection is closed, including kept-alive
        // ones a client left half-used (fastify would otherwise wait for their 72 s keep-alive timeout).
        const closing = app.close();
        const force = setTimeout(() => app.server.closeAllConnections(), 2000);
        await closing;
        clearTimeout(force);
        await inference.close();
      },
    };
  } catch (e) {
    await inference.close();
    throw e;
  }
}
