"""One home per method: distill_vq (Distill-VQ), disco (DiSCo), drr (Distill-Retrieve-Read)."""
