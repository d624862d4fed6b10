"""tweetdomains_trainer: the training job and its commands (train, sweep, evaluate, promote, pretrain,
teacher, teacher-score).

One responsibility a module; imports only go down this list (no cycles):

| module | responsibility |
|---|---|
| ``recipes`` | named presets of training options (``quality``: train's default; ``word``; ``original``) |
| ``options`` | one dataclass per command: every option's default, allowed values and help |
| ``pretrain_options`` | what ``pretrain`` accepts (the ``options`` scheme) |
| ``flags`` | argparse flags and help generated from an options dataclass |
| ``settings`` | the trainer's environment settings |
| ``progress`` | what a job prints: bars on a terminal, a line per epoch and a heartbeat elsewhere |
| ``data`` | records -> deduplicated splits -> flat encoded arrays (cached) -> length-bucketed batches |
| ``shards`` | one raw batch as a memory-mapped shard file: tokens, labels, content and id hashes |
| ``words`` | one raw batch read, normalized and tokenized as a whole into its words shard |
| ``pool`` | the process pool a corpus prepares in: tokenize new batches, encode new shards |
| ``stream`` | sharded splits read through memory maps; rank-disjoint, resumable batch streams |
| ``soft_stream`` | sharded splits carrying a teacher's soft labels, unlabeled tweets as in-memory parts |
| ``shard_vocab`` | a corpus's vocabulary from its shards' token counts, summed in arrays |
| ``dedupe`` | first occurrences of 8-byte keys across a corpus, through hash buckets on disk |
| ``corpus`` | the store's raw batches as shards: encoded once, deduplicated and split by hashes |
| ``scoring`` | the validation and test rows a run scores: all, or a fixed sample of a larger split |
| ``reports`` | Markdown tables, plots and run reports |
| ``lineage`` | what a published run was trained on (its metrics' ``lineage``) |
| ``promotion`` | champion/challenger: the best re-scored on the new run's validation split |
| ``steps`` | ``train_step``/``eval_step``, the optimizer, loss weights, device and seeds |
| ``calibration`` | per-domain calibration and the thresholds carried onto it, from validation |
| ``distributed`` | this process's place in a ``torchrun`` job |
| ``averaging`` | the weight average (EMA) validated and published in place of the raw weights |
| ``checkpoint`` | one ``TrainState`` per epoch in the store; ``--resume`` reads it back |
| ``encoder`` | pre-trained encoders under ``pretrained/``: publish, load, check, apply |
| ``phase`` | one training phase: model, optimizer, schedule, loss, and the pass over an epoch |
| ``publish`` | thresholds, scores, artifacts, publishing and promotion at the end of a run |
| ``sharded`` | store data in the job: the corpus (rank 0 first), streamed epochs, mid-epoch checkpoints |
| ``teacher_options`` | what ``teacher`` and ``teacher-score`` accept (the ``options`` scheme) |
| ``teacher_model`` | the transformer teacher (encoder, mean pooling, linear head) and its store format |
| ``soft_labels`` | a teacher's probabilities for tweets, cached in the store per teacher and texts |
| ``pretrain_corpus`` | the pre-training corpus: unlabeled texts, deduplicated, split, encoded |
| ``distill`` | the student's distillation: the teacher checked, unlabeled tweets, soft-label splits |
| ``corpus_distill`` | distillation on a sharded corpus: the teacher checked, soft labels for its rows |
| ``train`` | the training job: data, epochs, early stopping, refit, then publish |
| ``sweep`` | every row of a grid through ``train``, a results table, the best promoted |
| ``evaluate`` | a published run scored on labeled records |
| ``language_model`` | the language model that pre-trains an encoder, its steps |
| ``pretrain`` | the pre-training job: epochs of the language model, then the encoder published |
| ``teacher`` | the teacher's fine-tuning job: epochs, early stopping, thresholds, then publish |
| ``cli`` | registers the commands with ``tweetdomains``; loads the job only when one runs |
"""
