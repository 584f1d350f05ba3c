# The two commands of the README: `make demo` (main job on the embedded default) and `make test`.
# Both create .venv and install everything on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
# CPU wheel by default so a CPU machine never pulls CUDA; GPU users: TORCH_SPEC="torch==2.13.0" make ...
TORCH_SPEC ?= torch==2.13.0+cpu
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SPARK_STAMP := $(VENV)/.installed-spark

.PHONY: install spark test demo lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# The optional Spark extra (pyspark, for mlflow.pyfunc.spark_udf; Java 17+ must be on PATH). Without
# it the Spark test is skipped; CI runs `make spark test`.
$(SPARK_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e ".[dev,spark]"
	touch $(SPARK_STAMP)

spark: $(SPARK_STAMP)

test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest -n 2 -q

demo: $(STAMP)
	$(BIN)/autoice demo --workdir demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

bench: $(STAMP)
	$(BIN)/python bench/realism.py
	$(BIN)/python bench/chart_structure.py
	$(BIN)/python bench/skill.py
	$(BIN)/python bench/synth.py
	$(BIN)/python bench/prepare.py
	$(BIN)/python bench/score.py
	$(BIN)/python bench/loader.py
	$(BIN)/python bench/train_step.py
	$(BIN)/python bench/predict.py
	$(BIN)/python bench/export.py
	$(BIN)/python bench/mosaic.py

clean:
	rm -rf $(VENV) demo
