"""IVF + PQ (+ OPQ) as torch modules: read from a faiss index, trained by distillation, written back to faiss."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from retrieval_kd.errors import RKDError

CHECK_ROWS = 32768  # rows per slice of the export's comparison with faiss's own encoder

class Rotation(nn.Module):
    """OPQ rotation R (y = R x); learnable ones stay orthogonal through a Cayley parametrisation."""

    def __init__(self, matrix: torch.Tensor, learnable: bool = False):
        super().__init__()
        self.learnable = learnable
        if learnable:
            from torch.nn.utils.parametrizations import orthogonal

            self.weight = nn.Parameter(torch.empty_like(matrix))
            orthogonal(self, "weight", orthogonal_map="cayley")
            with torch.no_grad():
                self.weight = matrix  # sets the base to R and the skew parameter to zero
        else:
            self.register_buffer("weight", matrix.clone())

    def matrix(self) -> torch.Tensor:
        return self.weight


class VQStudent(nn.Module):
    """Student scores: IVF <R q, c_a(d)>, PQ <R q, c_a(d) + PQ(R d - c_a(d))>; hard codes, soft straight-through."""

    def __init__(
        self,
        centroids: torch.Tensor,
        codebooks: torch.Tensor,
        assign: torch.Tensor,
        rotation: torch.Tensor | None = None,
        factory: str = "",
        learn_opq: bool = False,
        update_ivf: bool = False,
        soft_tau: float = 1e-3,
    ):
        super().__init__()
        self.nlist, self.d = centroids.shape
        self.M, self.ksub, self.dsub = codebooks.shape
        if self.M * self.dsub != self.d:
            raise RKDError(f"PQ {self.M}x{self.dsub} does not cover dimension {self.d}")
        self.centroids = nn.Parameter(centroids.clone(), requires_grad=update_ivf)
        self.codebooks = nn.Parameter(codebooks.clone())
        self.register_buffer("assign", assign.clone().long())
        self.rotation = Rotation(rotation, learn_opq) if rotation is not None else None
        self.factory = factory
        self.register_buffer("tau", torch.tensor(float(soft_tau)))  # absolute; see calibrate_tau

    # ---- faiss -> torch ----
    @classmethod
    def from_faiss(cls, index: Any, **kw: Any) -> VQStudent:
        """Read coarse centroids, PQ codebooks, OPQ rotation and every document's list number from a faiss index."""
        import faiss
        from faiss.contrib.inspect_tools import get_invlist, get_LinearTransform_matrix, get_pq_centroids

        factory = getattr(index, "factory", "")
        index = getattr(index, "index", index)  # a retrieval_kd FaissIndex or a bare faiss index
        rotation = None
        if isinstance(index, faiss.IndexPreTransform):
            if index.chain.size() != 1:
                raise RKDError("only one pre-transform (OPQ) is supported")
            vt = faiss.downcast_VectorTransform(index.chain.at(0))
            A, b = get_LinearTransform_matrix(vt)
            if A.shape[0] != A.shape[1] or (b.size and np.abs(b).max() > 0):
                raise RKDError("pre-transform must be a square rotation without bias (OPQm, not OPQm_d)")
            rotation = torch.from_numpy(A.copy())
        ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
        if not isinstance(ivf, faiss.IndexIVFPQ) or not ivf.by_residual:
            raise RKDError(f"expected an IVF-PQ index with residual encoding, got {type(ivf).__name__}")
        if ivf.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise RKDError("Distill-VQ reproduces inner-product teachers: build the index with metric='ip'")
        if ivf.pq.nbits != 8:
            raise RKDError(f"PQ codes must have 8 bits per sub-vector, got {ivf.pq.nbits}")
        centroids = ivf.quantizer.reconstruct_n(0, ivf.nlist)
        assign = np.full(ivf.ntotal, -1, dtype=np.int64)
        for lst in range(ivf.nlist):
            ids, _ = get_invlist(ivf.invlists, lst)
            assign[ids] = lst
        if (assign < 0).any():
            raise RKDError("index ids must be 0..ntotal-1 (documents added in corpus order)")
        codebooks = get_pq_centroids(ivf.pq)
        return cls(torch.from_numpy(centroids), torch.from_numpy(codebooks.copy()), torch.from_numpy(assign),
                   rotation, factory=factory, **kw)

    # ---- forward pieces ----
    def rotate(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the OPQ rotation (identity without OPQ)."""
        return x if self.rotation is None else x @ self.rotation.matrix().T

    def _logits(self, residual: torch.Tensor, tau: float) -> torch.Tensor:
        """-(||r_m - c_mk||^2 - ||r_m||^2) / tau as [M, n, K]: argmax = nearest codeword, softmax = soft choice."""
        r = residual.reshape(-1, self.M, self.dsub).transpose(0, 1)
        cb = self.codebooks
        bias = -(cb * cb).sum(-1)[:, None, :] / tau
        return torch.baddbmm(bias, r, cb.transpose(1, 2), alpha=2.0 / tau)

    def quantize(self, residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """PQ(residual) with the hard codeword forward and softmax(-dist/tau) gradient; returns (recon, codes [n, M])."""
        n = len(residual)
        if not torch.is_grad_enabled():
            codes = self._logits(residual, 1.0).argmax(-1)
            return self._gather(codes).transpose(0, 1).reshape(n, self.d), codes.T
        logits = self._logits(residual, float(self.tau))
        codes = logits.argmax(-1)
        hard = self._gather(codes)
        soft = torch.bmm(torch.softmax(logits, -1), self.codebooks)
        return (hard + soft - soft.detach()).transpose(0, 1).reshape(n, self.d), codes.T

    @torch.no_grad()
    def calibrate_tau(self, x: torch.Tensor, relative: float, sample: int = 20000) -> float:
        """Set tau = relative x the median gap between the nearest and second-nearest codeword (first `sample` docs)."""
        xs = x[:sample].to(self.codebooks.device, torch.float32)
        top2 = self._logits(self.rotate(xs) - self.centroids[self.assign[:sample]], 1.0).topk(2, dim=-1).values
        gap = float((top2[..., 0] - top2[..., 1]).median())
        self.tau.fill_(max(relative * gap, 1e-12))
        return float(self.tau)

    def _gather(self, codes: torch.Tensor) -> torch.Tensor:
        """Codewords [M, n, dsub] of codes [M, n]."""
        return torch.gather(self.codebooks, 1, codes[..., None].expand(-1, -1, self.dsub))

    def doc_vectors(
        self, x: torch.Tensor, assign: torch.Tensor, rotated: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(c_a(d), c_a(d) + PQ(residual), codes) in the rotated space for documents x with lists `assign`."""
        c = self.centroids[assign]
        recon, codes = self.quantize((x if rotated else self.rotate(x)) - c)
        return c, c + recon, codes

    def forward(
        self, q: torch.Tensor, x: torch.Tensor, assign: torch.Tensor, rotated_docs: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """IVF and PQ scores [nq, nd] of queries q against documents x (teacher embeddings, or R x if rotated_docs)."""
        qr = self.rotate(q)
        c, full, _ = self.doc_vectors(x, assign, rotated_docs)
        return qr @ c.T, qr @ full.T

    # ---- deployment ----
    @torch.no_grad()
    def encode(self, x: torch.Tensor, batch: int = 16384) -> np.ndarray:
        """Hard PQ codes [N, M] (uint8) of all documents under the training assignment."""
        out = []
        for s in range(0, len(x), batch):
            xb = x[s : s + batch].to(self.codebooks.device, torch.float32)
            _, _, codes = self.doc_vectors(xb, self.assign[s : s + batch])
            out.append(codes.to(torch.uint8).cpu())
        return torch.cat(out).numpy()

    @torch.no_grad()
    def score_codes(self, q: torch.Tensor, codes: np.ndarray) -> torch.Tensor:
        """Exact student scores [nq, N] of the deployed (hard) codes."""
        c = self.centroids[self.assign]
        idx = torch.as_tensor(codes, dtype=torch.long, device=self.codebooks.device)
        recon = self._gather(idx.T).transpose(0, 1).reshape(len(idx), self.d)
        qr = self.rotate(q)
        return qr @ c.T + qr @ recon.T

    @torch.no_grad()
    def to_faiss(self, x: torch.Tensor, factory: str | None = None, check: bool = True) -> tuple[Any, dict[str, Any]]:
        """A fresh faiss index with the trained parameters, every document re-encoded under its training list
        (`check`: also compare with faiss's own encoder, as the saved index records)."""
        import faiss
        from faiss.contrib.inspect_tools import get_pq_centroids

        factory = factory or self.factory
        index = faiss.index_factory(self.d, factory, faiss.METRIC_INNER_PRODUCT)
        ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
        if ivf.nlist != self.nlist or ivf.pq.M != self.M or ivf.pq.ksub != self.ksub:
            raise RKDError(f"factory {factory!r} does not match the student (nlist {self.nlist}, PQ{self.M}x8)")
        if isinstance(index, faiss.IndexPreTransform) != (self.rotation is not None):
            raise RKDError(f"factory {factory!r} and the student disagree on OPQ")
        if self.rotation is not None:
            vt = faiss.downcast_VectorTransform(index.chain.at(0))
            faiss.copy_array_to_vector(_np(self.rotation.matrix()).ravel(), vt.A)
            vt.is_trained = True
        quantizer = faiss.downcast_index(ivf.quantizer)
        quantizer.reset()
        quantizer.add(_np(self.centroids))
        faiss.copy_array_to_vector(_np(self.codebooks).ravel(), ivf.pq.centroids)
        ivf.is_trained = True
        index.is_trained = True
        codes = self.encode(x)
        assign = self.assign.cpu().numpy()
        listno = assign.astype("<i8").view(np.uint8).reshape(len(assign), 8)[:, : ivf.coarse_code_size()]
        ivf.add_sa_codes(np.ascontiguousarray(np.hstack([listno, codes])))
        index.ntotal = ivf.ntotal  # an OPQ wrapper does not forward add_sa_codes; it was added below it
        info: dict[str, Any] = {"ntotal": int(index.ntotal)}
        if check:  # faiss's own encoder, given the same lists, should pick the same codewords (ties aside)
            assert np.allclose(get_pq_centroids(ivf.pq), _np(self.codebooks))
            agree = 0
            for s in range(0, len(x), CHECK_ROWS):  # in slices: faiss's encoder allocates residuals + tables per row
                xr = _np(self.rotate(x[s : s + CHECK_ROWS].to(self.codebooks.device)))
                fcodes = np.empty((len(xr), ivf.code_size), dtype=np.uint8)
                lists = np.ascontiguousarray(assign[s : s + CHECK_ROWS])
                ivf.encode_vectors(len(xr), faiss.swig_ptr(xr), faiss.swig_ptr(lists), faiss.swig_ptr(fcodes), False)
                agree += int((fcodes == codes[s : s + CHECK_ROWS]).all(1).sum())
            info["codes_agree_with_faiss_encoder"] = agree / max(1, len(x))
        return index, info


def _np(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().float().cpu().numpy())
