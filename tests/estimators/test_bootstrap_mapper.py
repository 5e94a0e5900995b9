"""Bootstrap chunks run through an orchestrator's mapper give exactly the local results."""

import numpy as np
import numpy.testing as npt

from ipm_outcomes.estimators import bootstrap


def mean_and_quantile(sample):
    x = sample["x"]
    return {"mean": np.array(x.mean()), "q90": np.array(np.quantile(x, 0.9))}


def test_mapper_results_equal_local_results():
    rng = np.random.default_rng(5)
    data = {"x": rng.exponential(size=500)}
    template = mean_and_quantile(data)
    local = bootstrap.run(mean_and_quantile, data, template, n_replicates=40, seed=9, workers=1)

    seen_chunks = []

    def serial_mapper(run_chunk, chunks):
        seen_chunks.extend(chunks)
        return [run_chunk(chunk) for chunk in reversed(chunks)]  # any order of completion

    with bootstrap.chunk_mapper(serial_mapper):
        mapped = bootstrap.run(mean_and_quantile, data, template, n_replicates=40, seed=9, workers=2)
    assert len(seen_chunks) == 8  # workers * 4 chunks went through the mapper
    assert sorted(r for chunk in seen_chunks for r, _ in chunk) == list(range(40))
    for name in template:
        npt.assert_array_equal(mapped.replicates[name], local.replicates[name])
    # outside the block the local path is used again
    again = bootstrap.run(mean_and_quantile, data, template, n_replicates=40, seed=9, workers=1)
    npt.assert_array_equal(again.replicates["mean"], local.replicates["mean"])
