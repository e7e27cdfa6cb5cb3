// What a head's registry entry is: its name, its options (declared once, beside the head), how to
// build it, and what the trainer must know of it. index.ts lists the entries.
import type { z } from 'zod';
import type { AggregationHead } from '../types.ts';
import type { AttentionBlock } from './attention.ts';
import type { Component, OptionShape } from '../../util/components.ts';

/** What the trainer must know of a head beyond building it. */
export interface HeadTraining {
  /** A run of it starts from a trained checkpoint of this head (--resume), as the reference requires. */
  startsFrom?: { head: string; label: string };
  /** Its own layers (parameter names within the head): absent from a `startsFrom` checkpoint, they start fresh. */
  isOwnLayer?: (name: string) => boolean;
  /** Learning-rate options (training config keys): its own layers at `ownLayers`, the rest of the network at `rest`. */
  learningRates?: { ownLayers: string; rest: string };
}

/** An aggregation head: feature maps [B, C, h, w] → descriptors [B, D]. */
export interface HeadEntry<N extends string = string, O extends OptionShape = OptionShape> extends Component<N, O> {
  /** Its display name in messages and reports (GeM, NetVLAD). */
  label: string;
  /** For `--help`: what it is. */
  description: string;
  create(inChannels: number, options: z.output<z.ZodObject<O>>): AggregationHead;
  training?: HeadTraining;
  /** It describes an image by a transformer backbone's global token, which the backbone must then output. */
  takesGlobalToken?: boolean;
}

/** A block in front of a head, `<block>+<head>`: feature maps → feature maps of the same shape. */
export interface BlockEntry<N extends string = string, O extends OptionShape = OptionShape> extends Component<N, O> {
  label: string;
  description: string;
  create(channels: number, options: z.output<z.ZodObject<O>>): AttentionBlock;
}

/** Entries keep their literal names and option types. */
export const defineHead = <N extends string, O extends OptionShape>(entry: HeadEntry<N, O>): HeadEntry<N, O> => entry;
export const defineBlock = <N extends string, O extends OptionShape>(entry: BlockEntry<N, O>): BlockEntry<N, O> => entry;
