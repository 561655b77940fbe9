# Two set-up commands (see README): `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test tools bench corpus quality quality-quick clean train-data train

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# Pinned CPU build first, so nothing below pulls a CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev,bench,cluster]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/anchorsr demo --out demo-out

test: $(STAMP) tools
	$(BIN)/python -m pytest -q

# Programs the serve tests use besides Python: Debian's ffmpeg (publishes test streams, relays SRT
# input: PyAV's FFmpeg has no libsrt) and chromium (plays the watch page), installed when apt-get
# can; hls.js from npm (the watch page's player where a browser has no native HLS). Nothing here
# fails the build: a test whose program is missing skips and says why.
tools:
	@command -v ffmpeg >/dev/null && command -v chromium >/dev/null || \
	  ( [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg chromium ) || \
	  echo "note: Debian's ffmpeg / chromium are not installed (needs root and apt-get); the SRT, RTMP-key and browser tests will skip"
	@test -f node_modules/hls.js/dist/hls.min.js || \
	  ( { command -v npm >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq && \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm; }; } && npm install --no-save --no-package-lock --no-audit --no-fund --silent hls.js@1 ) || \
	  echo "note: hls.js is not installed (needs npm); the watch page then plays HLS only in browsers that have it natively"

bench: $(STAMP)
	$(BIN)/anchorsr bench reuse --json

# Photographs for SR training and its held-out evaluation (Debian's mate-backgrounds), installed
# when apt-get can; otherwise a note: training then uses scikit-image's photos only, and
# `anchorsr bench sr` refuses to run (it measures the full held-out set or nothing).
train-data: $(STAMP)
	@test -d /usr/share/backgrounds/mate/nature || \
	  ( [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mate-backgrounds ) || \
	  echo "note: Debian's mate-backgrounds is not installed (needs root and apt-get); SR training uses scikit-image's photos only and 'anchorsr bench sr' will refuse to run"

# Train the shipped weights on the CPU, in the stages they were made in (the cosine learning rate
# runs over each stage's --iterations, so the stages are part of the recipe). Every stage resumes
# from the checkpoint W.ckpt when there is one, so running it again continues after a stop.
TRAIN = nice -n 10 $(BIN)/anchorsr train --channels 16 --body 2 --batch 16 --learning-rate 1e-3 --seed 0
WEIGHTS := anchorsr/sr/weights
train: train-data
	$(TRAIN) --scale 2 --iterations 1000 --val-every 250 -o $(WEIGHTS)/repsr_x2 $$(test -e $(WEIGHTS)/repsr_x2.ckpt && echo --resume)
	$(TRAIN) --scale 2 --iterations 6000 --val-every 500 -o $(WEIGHTS)/repsr_x2 --resume
	$(TRAIN) --scale 2 --iterations 16000 --val-every 1000 -o $(WEIGHTS)/repsr_x2 --resume
	$(TRAIN) --scale 2 --iterations 52000 --val-every 2000 -o $(WEIGHTS)/repsr_x2 --resume
	for s in 3 4; do \
	  $(TRAIN) --scale $$s --iterations 2000 --val-every 250 -o $(WEIGHTS)/repsr_x$$s $$(test -e $(WEIGHTS)/repsr_x$$s.ckpt && echo --resume) && \
	  $(TRAIN) --scale $$s --iterations 6000 --val-every 500 -o $(WEIGHTS)/repsr_x$$s --resume || exit 1; done

# The quality benchmark's corpus. Two of its sources are Debian packages (opencv-doc's vtest.avi,
# mate-backgrounds' photographs); they are installed here when apt-get can, else skipped with a note.
corpus: $(STAMP)
	@test -e /usr/share/doc/opencv-doc/examples/data/vtest.avi -a -d /usr/share/backgrounds/mate || \
	  ( [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends opencv-doc mate-backgrounds ) || \
	  echo "note: Debian's opencv-doc / mate-backgrounds are not installed; their clips will be skipped"
	$(BIN)/anchorsr bench corpus --json -o bench-out/corpus.json > /dev/null

quality: corpus
	$(BIN)/anchorsr bench quality --json -o bench-out/quality.json > /dev/null

quality-quick: corpus
	$(BIN)/anchorsr bench quality --quick --out bench-out/quality-quick

clean:
	rm -rf $(VENV) demo-out .pytest_cache node_modules
