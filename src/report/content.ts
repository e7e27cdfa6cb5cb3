// The report's fixed text: introduction, related work and method, citing the brief's references by
// their numbers. Nothing here states a result; results are written in sections.ts from the numbers.
import { b, cite, code, em, heading, para, type Block } from './doc.ts';

/** The brief's literature, numbered as in the brief. */
export const REFERENCES = [
  'R. Arandjelović, P. Gronat, A. Torii, T. Pajdla and J. Sivic. NetVLAD: CNN architecture for weakly supervised place recognition. TPAMI 2018.',
  'F. Radenović, G. Tolias and O. Chum. Fine-tuning CNN image retrieval with no human annotation. TPAMI 2018.',
  'C. Masone and B. Caputo. A survey on deep visual place recognition. IEEE Access 2021.',
  'L. Liu, H. Li and Y. Dai. Stochastic attraction-repulsion embedding for large scale image localization. ICCV 2019.',
  'Y. Xia, Y. Xu, S. Li, R. Wang, J. Du, D. Cremers and U. Stilla. SOE-Net: a self-attention and orientation encoding network for point cloud based place recognition. CVPR 2021.',
  'T. Ng, V. Balntas, Y. Tian and K. Mikolajczyk. SOLAR: second-order loss and attention for image retrieval. ECCV 2020.',
  'A. Dosovitskiy et al. An image is worth 16x16 words: transformers for image recognition at scale. ICLR 2021.',
  'A. Hassani, S. Walton, N. Shah, A. Abuduweili, J. Li and H. Shi. Escaping the big data paradigm with compact transformers. Preprint 2021.',
  'J. Devlin, M.-W. Chang, K. Lee and K. Toutanova. BERT: pre-training of deep bidirectional transformers for language understanding. NAACL 2019.',
  'H. J. Kim, E. Dunn and J.-M. Frahm. Learned contextual feature reweighting for image geo-localization. CVPR 2017.',
  'G. Berton, V. Paolicelli, C. Masone and B. Caputo. Adaptive-attentive geolocalization from few queries: a hybrid approach. WACV 2021.',
  'S. Woo, J. Park, J.-Y. Lee and I. S. Kweon. CBAM: convolutional block attention module. ECCV 2018.',
  'X. Wang, R. Girshick, A. Gupta and K. He. Non-local neural networks. CVPR 2018.',
  'F. Warburg, S. Hauberg, M. Lopez-Antequera, P. Gargallo, Y. Kuang and J. Civera. Mapillary street-level sequences: a dataset for lifelong place recognition. CVPR 2020.',
];

export function introduction(): Block[] {
  return [
    heading(1, 'Introduction'),
    para('Visual geo-localization (visual place recognition) finds where a photograph was taken by retrieving, from a database of geo-tagged images, the images most similar to it: the positions of the top retrieved images are the hypothesis for the query\'s position ', cite(1, 3), '. Each image is mapped by a network — a convolutional backbone and a head that aggregates its feature map — to a global descriptor, and retrieval is a k-nearest-neighbour search among descriptors. A query counts as localised at N if one of its N nearest database images lies within 25 m of its true position; recall@N is the percentage of localised queries.'),
    para('The task is image retrieval with a particular notion of relevance: an image is relevant when it was taken nearby, whatever it shows, while landmark retrieval asks for images of the same object ', cite(2), '. Positions come for free with street-level imagery, so training is weakly supervised: nearby images are probably, not certainly, of the same place ', cite(1), '.'),
    para('This report follows the brief: two baselines, NetVLAD ', cite(1), ' and GeM ', cite(2), ', on an ImageNet backbone trained with a triplet loss over mined negatives; ablations of the learning rate and optimiser, the training data, the positive radii at training and at test, data augmentation and the image size; a study of mining and of the recall–scalability trade-off; and variations of the loss, the attention and the backbone. Every number below is computed from the run files of the study (', code('evaluation.json'), ', ', code('log.jsonl'), '); the discussion is written from those numbers, and a reproducibility appendix says how to make them again.'),
  ];
}

export function relatedWork(): Block[] {
  return [
    heading(1, 'Related work'),
    para(b('Aggregation. '), 'NetVLAD ', cite(1), ' makes the VLAD encoding differentiable: local features are softly assigned to learned cluster centres and their residuals summed, giving a K x D descriptor trained end to end from GPS-tagged Street View with a weakly supervised triplet loss. GeM ', cite(2), ' pools each channel with a generalised mean whose exponent interpolates between average and max pooling; its descriptor has only D dimensions, and it was trained for landmark retrieval from automatically mined matching pairs. The survey ', cite(3), ' traces place recognition from hand-crafted local features to these learned global descriptors.'),
    para(b('Losses. '), 'The triplet loss ', cite(1), ' pulls a query towards its best positive and pushes it from negatives by a margin. SARE ', cite(4), ' models attraction and repulsion as a probability over distances and minimises a KL divergence; SOLAR ', cite(6), ' adds a second-order similarity term over the negatives; SOE-Net ', cite(5), ' (point clouds) proposes a lazy quadruplet variant.'),
    para(b('Attention and context. '), 'CRN ', cite(10), ' learns a contextual reweighting of the local features before NetVLAD\'s aggregation; ', cite(11), ' adds attention for few-query geolocalisation; the generic CBAM ', cite(12), ' (channel and spatial attention) and non-local blocks ', cite(13), ' can be inserted in front of any head.'),
    para(b('Backbones. '), 'Vision transformers ', cite(7), ' and compact convolutional transformers ', cite(8), ' replace the CNN; their class token, BERT\'s ', cite(9), ' idea, can serve as the descriptor without aggregation.'),
    para(b('Mining. '), 'Hard-negative mining ', cite(1), ' must describe a large pool of database images with the current network; MSLS ', cite(14), ' samples a smaller pool to make it cheaper, the partial mining of this study.'),
  ];
}

export function method(): Block[] {
  return [
    heading(1, 'Method'),
    heading(2, 'Network'),
    para('An ImageNet backbone cut before its classifier maps an image to a feature map ', em('x'), ' of D channels over H x W positions. The head turns it into a global descriptor, L2-normalised; database and query descriptors are compared by Euclidean distance (for unit vectors, equivalent to cosine similarity).'),
    para(b('GeM '), cite(2), ' pools channel k over its positions with exponent p (3 by default), then L2-normalises:'),
    { kind: 'equation', typst: 'f_k = (1 / (|X|) sum_(x in X) x_k^p)^(1 / p), quad bold(f) = bold(f) / norm(bold(f))_2', text: 'f_k = (mean over positions of x_k^p)^(1/p), then L2 normalisation' },
    para(b('NetVLAD '), cite(1), ' assigns each local feature x_i softly to K cluster centres c_k (initialised by k-means on training features) and sums the residuals; each cluster\'s block is L2-normalised (intra-normalisation), then the whole K x D vector:'),
    { kind: 'equation', typst: 'V_k = sum_(i=1)^(H W) (e^(bold(w)_k^top bold(x)_i + b_k)) / (sum_(k\') e^(bold(w)_(k\')^top bold(x)_i + b_(k\'))) (bold(x)_i - bold(c)_k), quad k = 1, dots, K', text: 'V_k = sum_i softmax_k(w_k x_i + b_k) (x_i - c_k)' },
    heading(2, 'Training: triplet loss and mining'),
    para('Each training query q comes with its positives (database images within the training radius, 10 m by default) and negatives (beyond the test radius, 25 m). The triplet loss ', cite(1), ' with margin m (0.1) over the best positive p* and M mined negatives n_j, summed and divided by batch x negatives as the reference implementation does:'),
    { kind: 'equation', typst: 'cal(L)(q) = sum_(j=1)^M max(0, m + norm(bold(f)(q) - bold(f)(p^*))_2 - norm(bold(f)(q) - bold(f)(n_j))_2)', text: 'L(q) = sum_j max(0, m + ||f(q) - f(p*)|| - ||f(q) - f(n_j)||)' },
    para(b('Mining. '), 'Positions say which images are near, not which show the place: the best positive is the nearby image closest in descriptor space, and useful negatives are the far-away images the network currently finds most similar. Every cache refresh describes the needed images with the current network and, per query,'),
    { kind: 'equation', typst: 'p^* = arg min_(p in cal(P)_q) norm(bold(f)(q) - bold(f)(p))_2, quad {n_j} = "top-"M_(n in cal(S)_q without cal(P)_q) (- norm(bold(f)(q) - bold(f)(n))_2)', text: 'p* = nearest positive in descriptor space; negatives = the M nearest non-positives of a sampled pool S_q' },
    para('where the pool ', em('S_q'), ' is, for ', b('full'), ' mining, a fresh sample of database images per query plus its previous hardest negatives; for ', b('partial'), ' mining ', cite(14), ', one sample shared by the cache loop; ', b('random'), ' mining skips the search and draws negatives at random.'),
    heading(2, 'Evaluation'),
    para('Recall@N is the percentage of test queries with at least one of their N nearest database images within the test radius d (25 m unless stated):'),
    { kind: 'equation', typst: 'R@N = 100 / (|Q|) sum_(q in Q) bb(1)[exists i <= N: "dist"(q, "db"_(r_q(i))) <= d]', text: 'R@N = percentage of queries with a database image within d among their top N' },
    para('Each variant is trained with several seeds; tables give the mean ± standard deviation over seeds. A difference in R@1 between two variants is judged by a paired bootstrap over test queries (each query\'s score the fraction of seeds that localise it at 1; 10,000 resamples): its 95% interval, marked * when it excludes 0. Only those differences are called differences in the text.'),
  ];
}
