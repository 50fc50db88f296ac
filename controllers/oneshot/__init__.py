"""One-shot (weight-sharing) controllers and the machinery they share.

``base``: :class:`OneShotController` (supernet built in ``bind``, searched in ``prepare``,
derived architectures proposed by ``ask``) and :class:`SearchData`; ``bilevel``: the weight and
architecture steps; ``unrolled``: the second-order architecture gradient; ``batches``: the two
data halves as persistent batch streams; ``checkpoint``: the per-epoch search checkpoint;
``latency``: the latency-aware loss and the hard target; ``report``: per-epoch metrics, log
lines, TensorBoard; ``darts`` + ``darts_options``: the DARTS / PC-DARTS / GDAS controller.
"""
