"""The ``asr-prepare`` command: corpora and other toolkits' data to JSON-lines manifests.

It parses the command line and dispatches: the corpora are :mod:`asr.corpora` (one module
each, ``download_X``/``prepare_X``), the speaker split :func:`asr.corpora.common.split_by_speaker`,
and Kaldi data directories, lhotse manifests and Hugging Face datasets :mod:`asr.kaldi`,
:mod:`asr.lhotse` and :mod:`asr.hf`::

    asr-prepare kaldi DATA_DIR OUT.jsonl [--audio-root DIR]
    asr-prepare split ALL.jsonl --train TRAIN.jsonl --dev DEV.jsonl [--test TEST.jsonl] [--dev-fraction 0.1]
    asr-prepare digits FSDD_DIR OUT_DIR [--dev-speakers lucas] [--test-speakers yweweler] [--synthetic N]
    asr-prepare librispeech LIBRISPEECH_DIR OUT_DIR --train-subsets train-clean-100
    asr-prepare synthetic TEXT_OR_MANIFEST OUT_DIR [--name synthetic] [--copies 1]
    asr-prepare download {fsdd,speechocean762,librispeech} DEST_DIR [--subsets ...]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from asr.corpora.common import PrepareError, split_by_speaker
from asr.corpora.fsdd import FSDD_DEV_SPEAKERS, FSDD_TEST_SPEAKERS, download_fsdd, prepare_digits, synthesize_digits
from asr.corpora.librispeech import download_librispeech, prepare_librispeech
from asr.corpora.speechocean762 import download_speechocean762
from asr.data import read_manifest, write_manifest
from asr.text import NUMBERS, NUMBERS_HELP, vocab_from_options
from asr.utils import HelpFormatter, run_cli


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(formatter_class=HelpFormatter,
        prog="asr-prepare", description="Prepare corpora as JSON-lines manifests.")
    sub = p.add_subparsers(dest="command", required=True)

    k = sub.add_parser("kaldi", formatter_class=HelpFormatter,
                       help="a Kaldi data directory (wav.scp, text, utt2spk) to one manifest")
    k.add_argument("data_dir", help="folder holding wav.scp and text (and utt2spk or spk2utt)")
    k.add_argument("out", help="manifest to write (JSON lines)")
    k.add_argument("--audio-root", help="folder that relative wav.scp paths start from "
                   "(default: found among the data dir, its parent, its grandparent and the working directory)")
    k.add_argument("--workers", type=int, default=4, help="threads measuring durations")
    k.add_argument("--numbers", choices=NUMBERS, default="auto", help=NUMBERS_HELP)
    k.add_argument("--allow-pipes", action="store_true",
                   help="run wav.scp pipe commands ('sox x.sph -t wav - |'), each named on stderr first, and keep "
                        "their audio in OUT.audio/ (only for data directories you trust; default: refused)")

    lh = sub.add_parser("lhotse", formatter_class=HelpFormatter,
                        help="a lhotse CutSet (or RecordingSet + SupervisionSet) JSON-lines manifest to ours")
    lh.add_argument("manifest", help="cuts.jsonl[.gz], or recordings.jsonl[.gz] with --supervisions")
    lh.add_argument("out", help="manifest to write (JSON lines)")
    lh.add_argument("--supervisions", help="the SupervisionSet that goes with a RecordingSet")

    hf = sub.add_parser("hf", formatter_class=HelpFormatter,
                        help="a local Hugging Face dataset (save_to_disk folder, Parquet files, audiofolder) to ours")
    hf.add_argument("dataset", help="the dataset folder (or a .parquet file)")
    hf.add_argument("out", help="manifest to write (JSON lines); audio held as bytes goes to OUT.audio/")
    hf.add_argument("--text-column", default="text", help="column with the transcript (e.g. sentence)")
    hf.add_argument("--audio-column", default="audio", help="column with the audio")
    hf.add_argument("--speaker-column", help="column naming the speaker, kept as 'speaker'")
    hf.add_argument("--split", help="which split of a dataset with several")

    s = sub.add_parser("split", formatter_class=HelpFormatter, help="split a manifest by speaker into train/dev(/test)")
    s.add_argument("manifest", help="manifest with a \"speaker\" key per line")
    s.add_argument("--train", required=True, help="training manifest to write")
    s.add_argument("--dev", required=True, help="dev manifest to write (held-out speakers)")
    s.add_argument("--test", help="test manifest to write (other held-out speakers)")
    s.add_argument("--dev-speakers", type=float, default=0.1, help="fraction (<1) or number of dev speakers")
    s.add_argument("--test-speakers", type=float, default=0.1, help="fraction (<1) or number of test speakers")
    s.add_argument("--seed", type=int, default=0, help="seed of the speaker shuffle")
    s.add_argument("--folds", type=int, default=0,
                   help="speaker cross-validation: deal the non-test speakers into this many folds (0: off)")
    s.add_argument("--fold", type=int, default=0, help="with --folds: the fold (0-based) that is dev")

    d = sub.add_parser("digits", formatter_class=HelpFormatter,
                       help="connected digits from the Free Spoken Digit Dataset")
    d.add_argument("corpus_dir", help="FSDD folder (holding recordings/); with --download, where to put it")
    d.add_argument("out_dir", help="folder for wav/ and train/dev/test.jsonl")
    d.add_argument("--dev-speakers", default=",".join(FSDD_DEV_SPEAKERS), help="comma-separated")
    d.add_argument("--test-speakers", default=",".join(FSDD_TEST_SPEAKERS), help="comma-separated")
    d.add_argument("--n-train", type=int, default=2000, help="connected-digit training utterances to build")
    d.add_argument("--n-dev", type=int, default=300, help="dev utterances to build")
    d.add_argument("--n-test", type=int, default=500, help="test utterances to build")
    d.add_argument("--seed", type=int, default=0, help="seed of the digit strings, pauses and gains")
    d.add_argument("--trim-prob", type=float, default=0.0, metavar="P",
                   help="cut this share of the training digits tight at 15-30 dB below their peak, as an "
                        "aggressive endpointer would (dev and test are never cut; default 0)")
    d.add_argument("--synthetic", type=int, default=0, metavar="N",
                   help="also write N eSpeak NG digit strings with random voices to synthetic.jsonl "
                        "(extra training speakers)")
    d.add_argument("--download", action="store_true", help="download FSDD v1.0.10 into corpus_dir first")

    _add_synthetic_parser(sub)

    dl = sub.add_parser("download", formatter_class=HelpFormatter, help="download and verify a public corpus")
    dl.add_argument("corpus", choices=["fsdd", "speechocean762", "librispeech"], help="which corpus")
    dl.add_argument("dest_dir", help="folder to download and unpack into")
    dl.add_argument("--subsets", default="train-clean-100,dev-clean,test-clean",
                    help="LibriSpeech subsets, comma-separated")

    ls = sub.add_parser("librispeech", formatter_class=HelpFormatter, help="LibriSpeech subsets to manifests")
    ls.add_argument("corpus_dir", help="the LibriSpeech folder (holding train-clean-100/, dev-clean/, ...)")
    ls.add_argument("out_dir", help="folder for <subset>.jsonl and train/dev/test.jsonl")
    ls.add_argument("--train-subsets", default="train-clean-100", help="comma-separated training subsets")
    ls.add_argument("--dev-subset", default="dev-clean", help="subset used as dev")
    ls.add_argument("--test-subset", default="test-clean", help="subset used as test")
    ls.add_argument("--extra-subsets", default="", help="more subsets to write <subset>.jsonl for (comma-separated)")
    return p


def _add_synthetic_parser(sub) -> None:
    sy = sub.add_parser("synthetic", formatter_class=HelpFormatter,
                        help="speak transcripts with random eSpeak NG voices (extra training speakers)",
                        description="Speak each line of a text file, or each transcript of a manifest, with "
                                    "random eSpeak NG voices (offline; 47 variants, US or British English, random "
                                    "rate and pitch) into OUT_DIR/wav/NAME/ and OUT_DIR/NAME.jsonl, to add to "
                                    "training as data.train_manifest=train.jsonl,OUT_DIR/NAME.jsonl.")
    sy.add_argument("text", help="text file (a sentence a line) or JSON-lines manifest (its transcripts)")
    sy.add_argument("out_dir", help="folder for wav/NAME/ and NAME.jsonl")
    sy.add_argument("--name", default="synthetic", help="manifest name and utterance id prefix (default synthetic)")
    sy.add_argument("--copies", type=int, default=1, help="voices per text, each drawn at random (default 1)")
    sy.add_argument("--seed", type=int, default=0, help="seed of the voices and the silence around them")


def _csv(arg: str) -> list[str]:
    return [s.strip() for s in arg.split(",") if s.strip()]


def _main_synthetic(args) -> None:
    from asr.lm import is_manifest
    from asr.synth import synthesize_texts
    from asr.utils import text_lines

    if args.copies < 1:
        raise PrepareError(f"--copies {args.copies}: expected at least one voice per text")
    if not Path(args.text).is_file():
        raise PrepareError(f"{args.text}: not found; expected a text file (a sentence a line) or a manifest")
    out = Path(args.out_dir) / f"{args.name}.jsonl"
    if out.exists():
        raise PrepareError(f"{out} already exists; pass another --name or OUT_DIR, or delete it and its "
                           f"wav/{args.name}/ to speak the texts again")
    texts = ([u.text for u in read_manifest(args.text, check_files=False)] if is_manifest(args.text)
             else text_lines(args.text, "text file"))
    if not any(t.strip() for t in texts):
        raise PrepareError(f"{args.text}: no text to speak; expected a sentence a line or a manifest with transcripts")
    utts = synthesize_texts(texts, args.out_dir, args.name, args.copies, seed=args.seed)
    print(f"{args.name}: {out}: {len(utts)} utterances, "
          f"{len({u.extra['speaker'] for u in utts})} voices, {sum(u.duration for u in utts) / 3600:.2f} h")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "kaldi":
        from asr.kaldi import read_kaldi_dir

        pipe_dir = Path(args.out).with_suffix(".audio") if args.allow_pipes else None
        utts = read_kaldi_dir(args.data_dir, audio_root=args.audio_root, workers=args.workers, pipe_dir=pipe_dir,
                              vocab=vocab_from_options(numbers=args.numbers))
        write_manifest(args.out, utts, relative=False)
        speakers = len({u.extra.get("speaker") for u in utts})
        print(f"{args.out}: {len(utts)} utterances, {speakers} speakers, "
              f"{sum(u.duration for u in utts) / 3600:.2f} h")
    elif args.command == "lhotse":
        from asr.lhotse import read_cuts, read_recordings_and_supervisions

        utts = (read_recordings_and_supervisions(args.manifest, args.supervisions) if args.supervisions
                else read_cuts(args.manifest))
        write_manifest(args.out, utts, relative=False)
        print(f"{args.out}: {len(utts)} utterances, {len({u.extra.get('speaker') for u in utts})} speakers, "
              f"{sum(u.duration for u in utts) / 3600:.2f} h")
    elif args.command == "hf":
        from asr.hf import read_dataset

        utts = read_dataset(args.dataset, Path(args.out).with_suffix(".audio"), args.text_column, args.audio_column,
                            args.split, args.speaker_column)
        write_manifest(args.out, utts, relative=False)
        print(f"{args.out}: {len(utts)} utterances, {sum(u.duration for u in utts) / 3600:.2f} h")
    elif args.command == "split":
        if args.test_speakers > 0 and not args.test:
            args.test_speakers = 0
        parts = split_by_speaker(read_manifest(args.manifest), args.dev_speakers, args.test_speakers, args.seed,
                                 args.folds, args.fold)
        for name, path, utts in zip(("train", "dev", "test"), (args.train, args.dev, args.test), parts):
            if path:
                write_manifest(path, utts, relative=False)
                speakers = len({u.extra["speaker"] for u in utts})
                print(f"{name}: {path}: {len(utts)} utterances, {speakers} speakers, "
                      f"{sum(u.duration for u in utts) / 3600:.2f} h")
    elif args.command == "digits":
        if args.synthetic < 0:
            raise PrepareError(f"--synthetic {args.synthetic}: expected a number of utterances >= 0")
        if not 0 <= args.trim_prob <= 1:
            raise PrepareError(f"--trim-prob {args.trim_prob}: expected a probability between 0 and 1")
        corpus = download_fsdd(args.corpus_dir) if args.download else args.corpus_dir
        prepare_digits(corpus, args.out_dir, _csv(args.dev_speakers),
                       _csv(args.test_speakers), args.n_train, args.n_dev, args.n_test, seed=args.seed,
                       trim_prob=args.trim_prob)
        if args.synthetic:
            synthesize_digits(args.out_dir, args.synthetic, seed=args.seed)
    elif args.command == "synthetic":
        _main_synthetic(args)
    elif args.command == "download":
        if args.corpus == "fsdd":
            corpus = download_fsdd(args.dest_dir)
        elif args.corpus == "speechocean762":
            corpus = download_speechocean762(args.dest_dir)
        else:
            corpus = download_librispeech(args.dest_dir, _csv(args.subsets))
        print(corpus)
    elif args.command == "librispeech":
        result = prepare_librispeech(args.corpus_dir, args.out_dir, _csv(args.train_subsets),
                                     args.dev_subset, args.test_subset, _csv(args.extra_subsets))
        for split, utts in result.items():
            print(f"{split}: {len(utts)} utterances, {sum(u.duration for u in utts) / 3600:.2f} h")
    return 0


def cli() -> None:
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
