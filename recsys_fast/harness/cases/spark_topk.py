"""Item-item cosine top-k with Apache Spark MLlib (the ``cosine_topk/spark`` peer).

``RowMatrix.columnSimilarities(threshold)`` is DIMSUM: with ``threshold > 0`` it *samples*
the pairs of each row (similarities under the threshold may be dropped, those above are
estimated); with ``threshold = 0`` every pair is kept with probability 1 and the result is the
exact cosine of every pair of columns (the brute-force product), which is what this peer runs.
It returns the upper triangle only (``i < j``, no diagonal, zero pairs absent) in float64.

The top-k selection stays on the Spark side: the entries' DataFrame (``i, j, value``) is
mirrored to both ``(i, j)`` and ``(j, i)``, ranked per row by ``row_number()`` over
``value desc, j asc`` (ties to the lower column index, the project's rule) and cut at k; only
the ``n_items * k`` kept entries are collected to the driver and turned into the CSR. Collecting
every pair to Python and selecting with numpy would time Python's conversion of millions of
rows instead of Spark.

Spark runs in this process's JVM as ``local[N]`` (N threads in one executor), as a single
machine allows; a cluster would be reached through ``spark-submit`` (out of scope here).
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MIB = 1 << 20
JVM_OVERHEAD = 512 * MIB  # metaspace, code cache, thread stacks, netty buffers beyond the heap


def java_problem() -> str | None:
    """Why Spark cannot start a JVM here (``None`` when a ``java`` executable is found).

    As Spark's launcher: ``$JAVA_HOME/bin/java`` when ``JAVA_HOME`` is set, else ``java`` on
    ``PATH``.
    """
    home = os.environ.get("JAVA_HOME", "").strip()
    if home:
        exe = Path(home) / "bin" / "java"
        if exe.is_file() and os.access(exe, os.X_OK):
            return None
        return f"no Java runtime: JAVA_HOME is set but {exe} is not an executable"
    if shutil.which("java"):
        return None
    return ("no Java runtime: java is not on PATH and JAVA_HOME is unset (Spark needs a JVM, "
            "e.g. Java 17)")


def driver_heap_bytes(n_ratings: int, n_items: int) -> int:
    """Driver heap for one exact ``columnSimilarities`` plus its top-k, rounded up to 256 MiB.

    The cached rows (~64 bytes a rating as JVM objects) and the pairs: up to
    ``n_items * (n_items - 1)`` entries (both triangles) at ~48 bytes in the shuffle and the
    window's sort, over a 512 MiB floor.
    """
    need = 512 * MIB + 64 * n_ratings + 48 * n_items * max(n_items - 1, 0)
    step = 256 * MIB
    return -(-need // step) * step


@dataclass
class SparkMatrix:
    """A local Spark session and the users x items ``RowMatrix`` cached in its JVM."""

    session: Any
    matrix: Any  # pyspark.mllib.linalg.distributed.RowMatrix
    n_items: int
    threads: int
    heap_bytes: int
    closed: bool = False

    def close(self) -> None:
        """Stop the session (once; the JVM itself lives as long as this process)."""
        if not self.closed:
            self.closed = True
            self.session.stop()

    def info(self) -> dict:
        """Where it ran: master, the driver's configured and actual maximum heap."""
        sc = self.session.sparkContext
        return {"spark_master": sc.master, "spark_version": sc.version,
                "spark_driver_memory": sc.getConf().get("spark.driver.memory", ""),
                "spark_jvm_max_heap_bytes": int(sc._jvm.java.lang.Runtime.getRuntime()
                                                 .maxMemory())}


def _imports():
    with warnings.catch_warnings():  # pyspark warns about pandas versions it has not tested
        warnings.simplefilter("ignore", FutureWarning)
        import pyspark.testing.utils  # noqa: F401 - else py4j's first call imports it (warning)
        from pyspark.mllib.linalg import Vectors
        from pyspark.mllib.linalg.distributed import RowMatrix
        from pyspark.sql import SparkSession
    return SparkSession, Vectors, RowMatrix


def start(R, threads: int, heap_bytes: int) -> SparkMatrix:
    """A ``local[threads]`` session and the ``RowMatrix`` of ``R`` (users x items CSR), its
    rows deserialised and cached in the JVM (so the timed calls never re-run Python workers).

    ``heap_bytes`` sets ``spark.driver.memory``; it takes effect only when this process starts
    its first JVM (a later session reuses that JVM).
    """
    SparkSession, Vectors, RowMatrix = _imports()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # read by the JVM spark-submit starts
    session = (SparkSession.builder.master(f"local[{int(threads)}]")
               .appName("recsys-fast cosine_topk")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.log.level", "ERROR")
               .config("spark.driver.memory", f"{heap_bytes // MIB}m")
               .config("spark.driver.host", "127.0.0.1")
               .config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.pyspark.python", sys.executable)  # workers: this interpreter
               .getOrCreate())
    try:
        session.sparkContext.setLogLevel("ERROR")
        R = R.tocsr().copy()
        R.sum_duplicates()  # sorted column indices, as SparseVector needs
        n_users, n_items = R.shape
        vectors = [Vectors.sparse(n_items, R.indices[R.indptr[u]:R.indptr[u + 1]],
                                  R.data[R.indptr[u]:R.indptr[u + 1]].astype(np.float64))
                   for u in range(n_users)]
        rdd = session.sparkContext.parallelize(vectors, int(threads))
        matrix = RowMatrix(rdd, n_users, n_items)
        rows = matrix._java_matrix_wrapper._java_model.rows()  # the JVM's RDD[Vector]
        rows.cache()
        rows.count()
    except BaseException:
        session.stop()
        raise
    return SparkMatrix(session, matrix, n_items, int(threads), int(heap_bytes))


def column_topk(sm: SparkMatrix, k: int):
    """Each column's k most similar columns by exact cosine (``columnSimilarities(0.0)``), self
    excluded, similarities > 0, ties to the lower index: CSR (n_items x n_items), columns
    ascending, float64."""
    import scipy.sparse
    from pyspark.mllib.common import callMLlibFunc
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    sims = sm.matrix.columnSimilarities(0.0)  # threshold 0: no sampling, exact
    # the entries as a JVM DataFrame (i, j, value), as CoordinateMatrix.entries builds them
    # before mapping every row to Python
    upper = callMLlibFunc("getMatrixEntries", sims._java_matrix_wrapper._java_model)
    upper = upper.toDF("i", "j", "v").where(F.col("v") > 0)
    both = upper.unionByName(upper.select(F.col("j").alias("i"), F.col("i").alias("j"), "v"))
    rank = Window.partitionBy("i").orderBy(F.col("v").desc(), F.col("j").asc())
    top = (both.withColumn("r", F.row_number().over(rank)).where(F.col("r") <= k)
           .select("i", "j", "v"))
    got = top.collect()
    n = sm.n_items
    if not got:
        return scipy.sparse.csr_matrix((n, n), dtype=np.float64)
    i, j, v = (np.asarray(c) for c in zip(*got, strict=True))
    return scipy.sparse.csr_matrix((v.astype(np.float64), (i.astype(np.int64),
                                                            j.astype(np.int64))), shape=(n, n))
