// How an index's model reads a photo (size and normalisation), and a photo decoded to that input.
// No engine here: the service decodes uploads on its main thread, which never loads libtorch (the
// worker thread that owns the model does).
import { loadImage, imageSize, type ImageInput, type ImageSize, type Normalization } from '../data/image.ts';
import type { ModelReference } from './index-store.ts';

/** The images a localizer reads, as network input: its size and normalisation. */
export interface InputFormat {
  size: ImageSize;
  normalization: Normalization;
}

export const inputFormatOf = (ref: ModelReference): InputFormat =>
  ({ size: imageSize(ref.resize), normalization: ref.normalization as Normalization });

/** A photo as network input [1, 3, H, W]. */
export async function prepareImage(input: ImageInput, format: InputFormat): Promise<Float32Array> {
  return (await loadImage(input, { size: format.size, normalization: format.normalization })).data;
}
