"""Distill-VQ (Xiao et al., SIGIR 2022): IVF-PQ trained to rank like a dense teacher, exported to plain faiss."""
