// `vgl train`: the reference's training options as kebab-case flags, or a config file (JSON/YAML)
// holding the same options; flags override the file. The resolved config is saved with the run.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import YAML from 'yaml';
import { TrainConfigSchema, camelKeys, camelCase } from '../../train/config.ts';
import { parseFlags, imageSizeFlag } from '../flags.ts';

type Kind = 'number' | 'string' | 'size' | 'list' | 'bool';
/** flag, kind, help — the option key is the flag in camelCase. */
const FLAGS: [string, Kind, string][] = [
  ['datasets-folder', 'string', 'root of the datasets_vg layout'],
  ['dataset-name', 'string', 'dataset folder under the root; several separated by commas train on their mixed training sets'],
  ['output-folder', 'string', 'run folder (checkpoints, log.jsonl, config.json); an existing run resumes'],
  ['backbone', 'string', 'resnet18conv4 | resnet18conv5 | resnet50conv4 | resnet50conv5 | vgg16 | mobilenetv2'],
  ['aggregation', 'string', 'gem | netvlad | crn | mac | spoc | avg | rmac (avg: the student report\'s average pooling, = spoc)'],
  ['resnet-widths', 'list', 'narrower ResNet stage widths, e.g. 16,32,64,128 (experiments from scratch)'],
  ['netvlad-clusters', 'number', 'NetVLAD/CRN clusters (64)'],
  ['l2', 'string', 'GeM/MAC/SPoC/avg/R-MAC: L2 before_pool (default) | after_pool | none'],
  ['gem-p', 'number', 'GeM exponent p, initial value (3)'],
  ['gem-p-trainable', 'bool', 'GeM p learns (true) or stays fixed (false)'],
  ['attention', 'bool', 'CBAM attention before the head'],
  ['fc-output-dim', 'number', 'learned whitening: Linear to this dimension + L2'],
  ['mixing', 'string', 'several --dataset-name a,b: queries per cache loop balanced across datasets (default) | proportional'],
  ['freeze-backbone', 'string', 'frozen backbone layers: reference (default) | none (all train) | all (head only)'],
  ['weights', 'string', 'ImageNet weights: .pth (ResNet, VGG) or TF.js folder (MobileNetV2)'],
  ['optimizer', 'string', 'adam | sgd'],
  ['lr', 'number', 'learning rate (1e-5)'],
  ['lr-crn-layer', 'number', 'CRN: learning rate of the CRN layers (5e-3)'],
  ['lr-crn-net', 'number', 'CRN: learning rate of the rest of the network (5e-4)'],
  ['resume', 'string', "start from this checkpoint's weights (e.g. another run's best.pth; CRN: a trained NetVLAD); the run's own last.pth still resumes it"],
  ['efficient-ram-testing', 'bool', 'validation and test describe and search the database in chunks (never all its descriptors at once)'],
  ['test-method', 'string', 'final test: hard_resize | single_query | central_crop | five_crops | nearest_crop | maj_voting'],
  ['momentum', 'number', 'SGD momentum (0.9)'],
  ['weight-decay', 'number', 'weight decay (Adam 0, SGD 1e-3)'],
  ['epochs', 'number', 'maximum epochs (1000)'],
  ['patience', 'number', 'epochs without val R@5 improvement before stopping (3)'],
  ['batch-size', 'number', 'tuples per step (4)'],
  ['criterion', 'string', 'triplet | sare-ind | sare-joint'],
  ['margin', 'number', 'triplet margin (0.1)'],
  ['invariance-weight', 'number', 'camera-invariance distillation (ours): weight of ||backbone(augmented image) - starting backbone(image)||^2 (0 = off)'],
  ['invariance-batch', 'number', 'images per step for the invariance term (16)'],
  ['loss-reduction', 'string', 'per-triplet (the reference: sum / (batch x negatives)) | per-query (mean over queries, the SARE paper)'],
  ['mining', 'string', 'full | partial | random (partial)'],
  ['queries-per-epoch', 'number', 'training queries per epoch (5000)'],
  ['cache-refresh-rate', 'number', 'queries per cache loop (1000)'],
  ['negs-num-per-query', 'number', 'negatives per tuple (10)'],
  ['neg-samples-num', 'number', 'database images sampled for mining (1000)'],
  ['train-positives-dist-threshold', 'number', 'hard positives radius in metres (10)'],
  ['val-positive-dist-threshold', 'number', 'soft positives radius in metres (25)'],
  ['resize', 'size', 'image size HxW (480x640)'],
  ['recall-values', 'list', 'N of recall@N (1,5,10,20)'],
  ['infer-batch-size', 'number', 'images per forward pass when caching/evaluating (16)'],
  ['seed', 'number', 'random seed (0)'],
  ['brightness', 'number', 'augmentation: colour jitter brightness'],
  ['contrast', 'number', 'augmentation: colour jitter contrast'],
  ['saturation', 'number', 'augmentation: colour jitter saturation'],
  ['hue', 'number', 'augmentation: colour jitter hue (≤ 0.5)'],
  ['rand-perspective', 'number', 'augmentation: random perspective distortion (0-1)'],
  ['random-resized-crop', 'number', 'augmentation: random resized crop, scale in [1-v, 1]'],
  ['random-rotation', 'number', 'augmentation: random rotation in degrees'],
  ['horizontal-flip', 'bool', "the reference's flip: each batch of tuples (queries, positives, negatives) mirrored together with probability 0.5"],
  ['query-horizontal-flip', 'number', 'augmentation: mirror the query alone with this probability (not in the reference)'],
  ['grayscale', 'number', 'augmentation: probability of a grey query (night, winter)'],
  ['gamma', 'number', 'augmentation: gamma exponent in [1/(1+v), 1+v]'],
  ['blur', 'number', 'augmentation: Gaussian blur, sigma in [0, v] pixels'],
  ['noise', 'number', 'augmentation: sensor noise, std in [0, v] of the [0,1] range'],
];
const AUGMENT = new Set(['brightness', 'contrast', 'saturation', 'hue', 'randPerspective', 'randomResizedCrop', 'randomRotation', 'queryHorizontalFlip', 'grayscale', 'gamma', 'blur', 'noise']);

function convert(kind: Kind, flag: string, v: string | boolean): unknown {
  if (kind === 'bool') {
    if (v === true || v === 'true') return true;
    if (v === 'false') return false;
    throw new Error(`--${flag} "${String(v)}": expected true or false (or no value for true)`);
  }
  const s = String(v);
  if (kind === 'string') return s;
  if (kind === 'number') {
    const n = Number(s);
    if (s.trim() === '' || !Number.isFinite(n)) throw new Error(`--${flag} "${s}": expected a number`);
    return n;
  }
  if (kind === 'list') return s.split(',').map((x) => convert('number', flag, x));
  const size = imageSizeFlag().safeParse(s);
  if (!size.success) throw new Error(`--${flag} "${s}": ${size.error.issues[0].message}`);
  return size.data;
}

/** Reads a config file (JSON or YAML; keys camelCase or kebab-case). */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`--config ${path}: ${(e as Error).message}`);
  }
  let data: unknown;
  try {
    data = /\.ya?ml$/i.test(path) ? YAML.parse(text) : JSON.parse(text);
  } catch (e) {
    throw new Error(`--config ${path}: not valid ${/\.ya?ml$/i.test(path) ? 'YAML' : 'JSON'}: ${(e as Error).message}`);
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) throw new Error(`--config ${path}: expected a mapping of options`);
  let out: Record<string, unknown>;
  try {
    out = camelKeys(data as Record<string, unknown>);
    const augment = out.augment && typeof out.augment === 'object' ? camelKeys(out.augment as Record<string, unknown>) : {};
    // The reference's augmentation options sit at the top level (brightness: 0.2); ours under augment.
    for (const key of Object.keys(out)) {
      if (!AUGMENT.has(key)) continue;
      if (key in augment) throw new Error(`option ${key} is given twice (at the top level and under augment)`);
      augment[key] = out[key];
      delete out[key];
    }
    if (Object.keys(augment).length > 0 || out.augment !== undefined) out.augment = augment;
  } catch (e) {
    throw new Error(`--config ${path}: ${(e as Error).message}`);
  }
  return out;
}

export function register(program: Command): void {
  const cmd = program.command('train').description('train a place-recognition model (resumes when the output folder holds last.pth)')
    .option('--config <file>', 'JSON or YAML file with any of these options (flags override it)');
  // Switches take an optional value: --attention, --attention true, --gem-p-trainable false.
  for (const [flag, kind, help] of FLAGS) cmd.option(kind === 'bool' ? `--${flag} [value]` : `--${flag} <value>`, help);
  cmd.action(async (raw: Record<string, string | boolean | undefined>) => {
    const options: Record<string, unknown> = raw.config ? readConfigFile(String(raw.config)) : {};
    const augment: Record<string, unknown> = { ...(options.augment as object | undefined) };
    for (const [flag, kind] of FLAGS) {
      const key = camelCase(flag);
      const v = raw[key];
      if (v === undefined) continue;
      if (AUGMENT.has(key)) augment[key] = convert(kind, flag, v);
      else options[key] = convert(kind, flag, v);
    }
    options.augment = augment;
    const config = parseFlags(TrainConfigSchema, options);
    const { train } = await import('../../train/train.ts');
    const result = await train(config);
    console.log(JSON.stringify(result, null, 2));
  });
}
