"""DRR on LiveQA-Med + MedicineQA: `python eval/medicineqa.py` = `rkd eval medicineqa -c configs/drr_eval.yaml`."""
from retrieval_kd.cli import run_recipe

if __name__ == "__main__":
    run_recipe("eval", "medicineqa", prog="python eval/medicineqa.py", defaults={"config": "configs/drr_eval.yaml"})
