"""Mutation testing of the core modules with mutmut: how many planted bugs the tests catch.

For each module, mutmut makes small changes to its code (``<`` to ``<=``, ``+ 1`` to
``+ 2``, a string or a default changed, a call argument dropped), one at a time, and runs
the tests that reach the changed function; a mutant whose tests all still pass
*survived*. The score of a module is the share of its mutants that were killed (a test
failed, or the run timed out), over all mutants except those listed in EQUIVALENT below:
changes that no test can see because the code behaves the same.

Each module runs alone, in its own folder under ``.mutation/`` (a copy of the package
and the tests, made by mutmut, kept between runs so that an interrupted or repeated run
only redoes what changed), with its own fast selection of tests: no test that trains a
model, since mutmut runs a mutant's tests from a fresh process and would train it again
for every mutant. Not part of CI: a full run takes about an hour on 2 cores.

    nice .venv/bin/python bench/mutation.py                 # every module
    nice .venv/bin/python bench/mutation.py inference/vector.py data/classes.py
    nice .venv/bin/python bench/mutation.py --survivors inference/sliding.py
    nice .venv/bin/python bench/mutation.py --survivors --timeouts data/catalog.py

writes bench/results/mutation.json (a run of some modules keeps the others' entries).
``--survivors`` re-tests only what the last run left alive or untested: after adding tests,
or to finish a stopped run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from fnmatch import fnmatchcase
from pathlib import Path

from common import REPO, RESULTS, _commit, write_result

# Module (under src/aerialseg) -> the tests that guard it, as pytest arguments, and the
# functions to mutate when only part of a module is the core ("*" for all of it).
MODULES: dict[str, dict] = {
    "data/classes.py": {"tests": ["tests/data/test_classes.py"]},
    "data/splits.py": {"tests": ["tests/data/test_splits.py", "tests/data/test_blocks.py"]},
    "data/source.py": {"tests": ["tests/data/test_source.py"]},
    # The one data layer (issue 28): label rasters, scenes, the catalog of every form.
    "data/labels.py": {
        "tests": [
            "tests/data/test_labels.py",
            "tests/data/test_catalog.py",
            "tests/data/test_source.py",
            "tests/data/test_scene_kinds.py",
        ]
    },
    "data/scenes.py": {
        "tests": [
            "tests/data/test_scenes.py",
            "tests/data/test_scene_kinds.py",
            "tests/data/test_labels.py",
            "tests/data/test_catalog.py",
            "tests/data/test_samples.py",
            "tests/data/test_inspect.py",
            "tests/data/test_source.py",
            "tests/data/test_remote.py",
        ]
    },
    "data/catalog.py": {
        "tests": [
            "tests/data/test_catalog.py",
            "tests/data/test_scenes.py",
            "tests/data/test_labels.py",
            "tests/data/test_splits.py",
            "tests/data/test_inspect.py",
            "tests/data/test_source.py",
            "tests/data/test_remote.py",
        ]
    },
    # split out of source.py: its layout discovery, still guarded by test_source.py
    "data/layouts.py": {"tests": ["tests/data/test_source.py"]},
    # Spatial blocks: the block split's grid, its buffer and group dealing, block sizes
    # in pixels or metres (splits and suggest)
    "data/blocks.py": {
        "tests": [
            "tests/data/test_blocks.py",
            "tests/data/test_splits.py",
            "tests/data/test_catalog.py",
            "tests/inference/test_suggest.py",
        ]
    },
    # The one opener of images and label rasters (which drivers, zip entries, URLs, bands,
    # the stretch to 0..255, the read at another pixel size).
    "data/raster.py": {
        "tests": [
            "tests/data/test_raster.py",
            "tests/data/test_remote.py",
            "tests/data/test_scene_kinds.py",
            "tests/data/test_source.py",
            "tests/inference/test_georeference.py",
            "tests/inference/test_blocks.py",
            "tests/inference/test_predict.py",
            "tests/api/test_uploads.py",
            "tests/test_public.py",  # Model.predict's arrays: read_array's rules
            "tests/data/test_labels.py",  # a 16-bit stretch of a label raster's image
        ]
    },
    # Checks on any scene, pairs or polygons alike, in one run (issue 28)
    "data/inspect.py": {
        "tests": [
            "tests/data/test_inspect.py",
            "tests/data/test_scene_kinds.py",
            "tests/data/test_source.py",
        ]
    },
    "evaluation/metrics.py": {"tests": ["tests/evaluation/test_metrics.py"]},
    # The sliding window's geometry: where windows lie and how they are weighted.
    "inference/sliding.py": {
        "tests": [
            "tests/inference/test_sliding.py",
            "tests/inference/test_predict.py::test_row_bands_equal_in_memory_windows_and_whole_image",
            "tests/inference/test_predict.py::test_one_window_and_resize_models_predict_in_one_pass",
        ]
    },
    # The Predictor: its one blending loop (rows), images in memory, options, batch sizes.
    "inference/predict.py": {
        "tests": [
            "tests/inference/test_sliding.py",
            "tests/inference/test_predict.py::test_row_bands_equal_in_memory_windows_and_whole_image",
            "tests/inference/test_predict.py::test_one_window_and_resize_models_predict_in_one_pass",
            "tests/inference/test_predict.py::test_nodata_pixels_of_a_windowed_scene",
            "tests/inference/test_predict.py::test_whole_image_probabilities_are_those_of_the_rows_bit_for_bit",
            "tests/inference/test_predict.py::test_an_image_in_memory_and_its_geotiff_give_the_same_ids",
            "tests/inference/test_predict.py::test_default_batch_size",
            "tests/inference/test_predict.py::test_windows_go_through_the_network_in_the_batches_asked",
            "tests/inference/test_predict.py::test_row_blocks_are_bit_identical_to_the_whole_run",
            "tests/inference/test_predict.py::test_band_starts_are_the_rows_predict_rows_starts_bands_at",
            # its option checks and the band starts a Predictor gives Ray's blocks
            "tests/inference/test_predict.py::test_an_overlap_option_is_a_share_of_the_window_up_to_half",
            "tests/inference/test_load.py::test_a_batch_size_is_checked_before_the_model_loads",
            "tests/inference/test_blocks.py::test_blocks_are_cut_where_bands_start_and_cover_the_scene",
            "tests/inference/test_predict.py::test_images_go_to_the_device_asked_before_the_network",
            "tests/inference/test_predict.py::test_prediction_on_a_fresh_thread_builds_no_autograd_graph",
            "tests/inference/test_engine.py::test_cpu_predicts_two_windows_a_pass_in_bf16_one_in_fp32",
            "tests/evaluation/test_evaluate.py::test_tta_scores_the_flip_average",
            "tests/evaluation/test_evaluate.py::test_precision_is_the_one_scored",
            "tests/evaluation/test_calibration.py::test_temperature_keeps_classes_and_spreads_or_sharpens",
        ]
    },
    # From a model the user names to a Predictor: model files, .onnx, engines, devices.
    "inference/load.py": {
        "tests": [
            "tests/inference/test_load.py",
            "tests/inference/test_predict.py::test_an_image_in_memory_and_its_geotiff_give_the_same_ids",
            "tests/inference/test_predict.py::test_onnx_engine_on_a_pt_model_exports_it_for_the_run",
            "tests/inference/test_predict_errors.py::test_model_that_is_not_a_model",
            "tests/inference/test_engine.py::test_onnx_engine_refuses_bf16",
            "tests/evaluation/test_evaluate.py::test_an_exported_onnx_model_scores_as_its_model_file",
            "tests/models/test_io.py::test_model_files_of_the_e71fee0_release_still_load_and_predict",
            "tests/test_public.py::test_many_windows_match_the_command",
            "tests/test_public.py::test_load_model_errors_are_one_line",
            "tests/test_public.py::test_default_names_the_bundled_model_wherever_a_model_is_taken",
        ]
    },
    # Row blocks of a large scene, written apart by Ray workers and assembled (issue 29).
    "inference/blocks.py": {"tests": ["tests/inference/test_blocks.py"]},
    # The Ray driver and its workers, on an in-process stand-in for Ray (fake_ray.py):
    # _start_ray alone is left out, since only a real cluster tests connecting to one
    # (test_distributed.py does, too slowly to run once a mutant).
    "inference/distributed.py": {
        "tests": ["tests/inference/test_ray_driver.py"],
        "functions": [
            "x_run_fingerprint__mutmut_*",
            "xǁDoneRecordǁ*",
            "x__entry__mutmut_*",
            "x__cut_short__mutmut_*",
            "x__stamp__mutmut_*",
            "xǁPredictWorkerǁ*",
            "x_predict_on_ray__mutmut_*",
            "x_placement__mutmut_*",
            "x__share__mutmut_*",
            "x__drive__mutmut_*",
            "x__remove_temporaries__mutmut_*",
            "x_ray_inputs__mutmut_*",
        ],
    },
    # What a model file holds to predict, read from any release's file.
    "models/spec.py": {"tests": ["tests/models/test_io.py", "tests/models/test_spec.py"]},
    # The LightningModule: loss, validation as predict runs it, schedule, optimiser; driven
    # without a Trainer (tests/training/test_module.py), so no test trains a model here.
    "training/module.py": {
        "tests": [
            "tests/training/test_module.py",
            "tests/training/test_run.py::test_loss_adds_the_weighted_terms",
            "tests/training/test_run.py::test_encoder_learns_at_its_own_rate",
            "tests/training/test_finetune.py::test_frozen_batch_norms_keep_their_statistics_and_learn_scale_and_shift",
        ]
    },
    # The training command: its parts without a run (test_run_parts.py), and train() by
    # the quickest runs of the tiny model that reach each of its branches (under 2 s each).
    "training/run.py": {
        "tests": [
            "tests/training/test_run_parts.py",
            "tests/training/test_run.py::test_train_evaluate_reload",
            "tests/training/test_run.py::test_settings_that_cannot_run_stop_before_anything_is_written",
            "tests/training/test_run.py::test_max_steps_before_the_first_validation",
            "tests/training/test_run.py::test_the_time_counts_from_the_commands_start",
            "tests/training/test_run.py::test_the_run_hands_the_data_its_transform_and_unlabelled_images",
            "tests/training/test_run.py::test_the_run_reads_its_scenes_at_its_pixel_size",
            "tests/training/test_run.py::test_a_block_split_at_native_pixels_trains_and_scores_at_another_pixel_size",
            "tests/test_own_area.py::test_polygons_split_train_evaluate_predict",
            "tests/training/test_run.py::test_resume_after_interruption",
            "tests/training/test_run.py::test_resume_keeps_the_time_budgets_schedule",
            "tests/training/test_run.py::test_ema_weights_are_the_ones_shipped",
            "tests/training/test_run.py::test_fine_tuning_starts_from_the_given_model",
            "tests/training/test_run.py::test_a_damaged_last_checkpoint_says_what_to_do",
            "tests/training/test_run.py::test_resume_with_only_the_best_checkpoint_names_resume_from_best",
            "tests/training/test_run.py::test_the_temperature_is_fitted_on_the_shipped_weights_validation",
            "tests/training/test_run.py::test_an_epoch_run_twice_is_listed_once",
            "tests/training/test_run.py::test_experiment_trackers_beside_the_csv",
            "tests/training/test_run.py::test_a_tracker_that_is_not_installed_says_how_to_get_it",
            "tests/training/test_finetune.py::test_a_run_stops_when_validation_stops_improving_and_says_so",
            "tests/training/test_pseudo.py::test_a_run_draws_crops_from_the_unlabelled_images_too",
            "tests/training/test_run.py::test_a_run_stopped_by_max_steps_at_an_epochs_end_resumes_into_the_next",
            "tests/training/test_run.py::test_a_run_stopped_early_is_resumed_only_with_more_patience",
            "tests/training/test_run.py::test_a_resume_that_would_reshape_the_network_is_refused_and_the_run_kept",
        ]
    },
    # A run folder held by one train, and its checkpoints' record when it moves.
    "training/folder.py": {
        "tests": [
            "tests/training/test_folder.py",
            "tests/training/test_run.py::test_resume_after_interruption",
            "tests/training/test_run.py::test_a_run_folder_moved_before_its_resume_keeps_its_best",
        ]
    },
    # Crops for training: where they are cut, class-balanced draws; their transforms.
    "data/crops.py": {
        "tests": [
            "tests/data/test_crops.py",
            "tests/data/test_samples.py",
            "tests/data/test_scenes.py",
        ]
    },
    "data/transforms.py": {
        "tests": ["tests/data/test_transforms.py", "tests/data/test_samples.py"]
    },
    # suggest's doubt per block, its scores and the choice of blocks.
    # (the scenes painted so that the doubt is known; the bundled model's are not copied)
    "inference/doubt.py": {
        "tests": [
            "tests/inference/test_doubt.py",
            "tests/inference/test_suggest.py::test_the_doubtful_block_ranks_first_and_its_task_is_written",
            "tests/inference/test_suggest.py::test_mixed_prefers_a_mixed_block_to_a_pure_one_of_the_same_doubt",
            "tests/inference/test_suggest.py::test_neighbours_of_the_same_doubt_do_not_all_win",
            "tests/inference/test_suggest.py::test_labelled_blocks_are_never_suggested_again_whatever_their_crs",
            "tests/inference/test_suggest.py::test_random_is_deterministic_for_a_seed",
            "tests/inference/test_suggest.py::test_prelabel_holds_the_models_polygons_inside_each_task",
            "tests/inference/test_suggest.py::test_bad_requests_get_one_line",
            "tests/inference/test_suggest.py::test_plain_images_get_tasks_in_pixel_coordinates",
        ]
    },
    # The outputs of predict: what each file holds, and the tests that check GCPs, RPCs,
    # nodata, every output and PNGs end to end (named one by one: test_predict.py whole
    # made mutmut's stats run fail, "failed to collect stats. runner returned 1").
    "inference/writers.py": {
        "tests": [
            "tests/inference/test_writers.py",
            "tests/inference/test_areas.py",
            "tests/inference/test_georeference.py::test_a_scene_placed_by_gcps_or_rpcs_alone_keeps_them_in_every_raster",
            "tests/inference/test_georeference.py::test_ground_control_points_in_no_crs_are_written_without_them",
            "tests/inference/test_predict.py::test_georeference_is_kept",
            "tests/inference/test_predict.py::test_nodata_stays_nodata",
            "tests/inference/test_predict.py::test_plain_jpeg_gives_png_outputs",
            "tests/inference/test_predict_errors.py::test_a_scene_that_a_png_cannot_hold_is_written_as_tiff",
            "tests/inference/test_predict_errors.py::test_a_scene_as_wide_as_a_png_holds_is_still_png",
        ]
    },
    # polygons of rotated, GCP-placed and PNG class rasters, and areas in any CRS
    "inference/vector.py": {
        "tests": [
            "tests/inference/test_vector.py",
            "tests/inference/test_georeference.py",
            "tests/inference/test_areas.py",
        ]
    },
    # The upload limits only: the rest of the app is its routing, tested by tests/api.
    "api/app.py": {
        "tests": [
            "tests/api/test_app.py::test_size_limits_are_413",
            "tests/api/test_app.py::test_byte_and_pixel_limits_are_told_apart_at_their_edges",
            "tests/api/test_app.py::test_the_upload_limit_is_told_in_mib_and_checked_before_decoding",
            "tests/api/test_app.py::test_default_limits_are_the_documented_ones",
            "tests/api/test_app.py::test_each_output_of_segment_with_a_pointwise_engine",
            "tests/api/test_app.py::test_segment_asks_predict_for_what_the_request_names_only",
            "tests/api/test_app.py::test_wrong_parameters_are_422_in_one_line",
            "tests/api/test_app.py::test_validation_errors_read_as_one_line_whatever_they_hold",
            "tests/api/test_app.py::test_a_bad_vector_parameter_is_422_not_500",
            "tests/api/test_app.py::test_json_parts_asked_of_an_image_answer_are_422",
            "tests/api/test_app.py::test_band_count_is_422_until_bands_are_chosen",
            "tests/api/test_uploads.py::test_a_very_wide_image_is_413_from_its_header",
            "tests/api/test_uploads.py::test_an_elongated_image_is_413_and_the_limits_are_the_servers",
            "tests/api/test_uploads.py::test_open_input_reads_with_the_one_driver_it_is_given",
            "tests/api/test_uploads.py::test_each_allowed_kind_is_read",
        ],
        # mutmut mutates function bodies only: ServeLimits' defaults are guarded by a test,
        # not counted here
        "functions": [
            "x__options__mutmut_*",
            "x__segment__mutmut_*",
            "x__json_answer__mutmut_*",
            "x__validation_text__mutmut_*",
        ],
    },
    # Polygon labels: read, checked, moved to a scene's CRS (densified, cut to the scenes'
    # box) and rasterised by window.
    "data/polygons.py": {
        "tests": [
            "tests/data/test_polygons.py",
            "tests/data/test_scenes.py",
            "tests/data/test_catalog.py",
        ]
    },
    # Areas in any CRS: on the plane, or on a scene-centred equal-area one; summed exactly.
    "inference/areas.py": {
        "tests": ["tests/inference/test_areas.py", "tests/inference/test_writers.py"]
    },
}

# Mutants that change nothing a caller can observe, with the reason, keyed by mutmut's
# mutant name. mutmut numbers a function's mutants in order, so a name holds only for the
# code it was checked on: only training/run.py's not yet re-tested ones are left here, to
# move to EQUIVALENT_DIFFS (by line) once a run shows their diffs.
EQUIVALENT: dict[str, str] = {}


def _add_equivalent(module: str, groups: list) -> None:
    """List each group's mutants of ``module`` (e.g. "data.splits") as equivalent, with
    the group's reason."""
    for names, why in groups:
        EQUIVALENT.update({f"aerialseg.{module}.{n}": why for n in names})


# Equivalent mutants by the line they change and what they change it to (the line as it
# stands, stripped): a function changed since numbers its mutants anew, and a number would
# then name another mutant. Module -> (line, mutated line, why); a mutated line "" is the
# line deleted.
_GDAL_CASE = "GDAL's driver names and creation options are case-insensitive, keys and values alike"
_AS_FLOAT = (
    "float64 values of 0..255 (or a class code): rasterio casts them to the band's integer "
    "type, truncating, as astype does"
)
_NO_WARNING = (
    "simplefilter('ignore') without a category silences every warning while a file is "
    "opened or copied; none but the missing georeference arises there"
)


def _variants(line: str, mutated: list[str], why: str) -> list[tuple[str, str, str]]:
    return [(line, m, why) for m in mutated]


EQUIVALENT_DIFFS: dict[str, list[tuple[str, str, str]]] = {
    "data/raster.py": [
        (
            "data = ds.read(list(bands), out_shape=(len(bands), *shape)).astype(np.float64)",
            "data = ds.read(list(bands), out_shape=(len(bands), *shape)).astype(None)",
            "astype(None) is astype(float64)",
        ),
        (
            "array = array.astype(np.float32)  # float16: no GDAL type",
            "array = array.astype(None)  # float16: no GDAL type",
            "float16 values held as float64 rather than float32: the same values, stretched "
            "alike (no GDAL type either way)",
        ),
        *_variants(
            'warnings.simplefilter("ignore", NotGeoreferencedWarning)  # an array has no place',
            [
                'warnings.simplefilter("ignore", )  # an array has no place',
                'warnings.simplefilter("ignore", None)  # an array has no place',
            ],
            _NO_WARNING,
        ),
        *_variants(
            'driver="GTiff", width=width, height=height, count=count, dtype=array.dtype.name',
            [
                f'driver="{name}", width=width, height=height, count=count, dtype=array.dtype.name'
                for name in ("gtiff", "GTIFF")
            ],
            _GDAL_CASE,
        ),
        (
            "f.seek(max(0, os.path.getsize(path) - PNG_TAIL_BYTES))",
            "f.seek(max(1, os.path.getsize(path) - PNG_TAIL_BYTES))",
            "a PNG shorter than the tail read from its second byte: its end chunk, which "
            "follows the 8-byte signature and a header chunk, never starts at its first",
        ),
        *_variants(
            "work = np.float32 if data.dtype.itemsize <= 2 else np.float64",
            [
                "work = None",
                "work = np.float32 if (data.dtype.itemsize <= 2) and False else np.float64",
                "work = np.float32 if data.dtype.itemsize < 2 else np.float64",
                "work = np.float32 if data.dtype.itemsize <= 3 else np.float64",
            ],
            "8- and 16-bit values stretched in float64 rather than float32 (no dtype is 3 "
            "bytes): the same stretch, rounded to float32 at the end; float32 is the faster "
            "and smaller choice where it is exact",
        ),
        (
            "low, high = (np.divide(bound.astype(work), 2)[:, None, None] for bound in scale)",
            "low, high = (np.divide(bound.astype(None), 2)[:, None, None] for bound in scale)",
            "float64 bounds: numpy computes the stretch in float64, the same values rounded to "
            "float32 at the end",
        ),
        (
            "out = np.clip((np.divide(data.astype(work), 2) - low) / (high - low) * 255, 0, 255)",
            "out = np.clip((np.divide(data.astype(None), 2) - low) / (high - low) * 255, 0, 255)",
            "the values stretched in float64 rather than float32 (8- and 16-bit ones are exact "
            "in both): the same stretch, rounded to float32 at the end",
        ),
        (
            "if factor > 1 and not (highs > lows).all():",
            "if factor >= 1 and not (highs > lows).all():",
            "the rescan of a raster read whole already (factor 1): the same pixels, the same "
            "percentiles",
        ),
        (
            "lows, highs = _percentiles(whole[0][:, whole[1]].astype(np.float64))",
            "lows, highs = _percentiles(whole[0][:, whole[1]].astype(None))",
            "np.percentile interpolates in float64 whatever the input's type: the same values",
        ),
        (
            "data = ds.read(list(bands), window=window).astype(np.float64)",
            "data = ds.read(list(bands), window=window).astype(None)",
            "the kept values are float64 whatever a strip's type (concatenated to the float64 "
            "start), and the percentiles are computed in float64",
        ),
        (
            "rows = max(1, STATS_SIDE**2 // ds.width)",
            "rows = max(2, STATS_SIDE**2 // ds.width)",
            "differs only for a raster over 1,048,576 px wide (strips of 2 rows, not 1): the "
            "same pixels read, the same values kept",
        ),
        *_variants(
            "crs=ds.crs,",
            ["crs=None,", ""],
            "WarpedVRT warps onto its source's CRS unless given another (the tests read the "
            "resampled raster's CRS back: the same)",
        ),
    ],
    "data/inspect.py": [
        (
            "counted = np.bincount(encoded.ids.ravel(), minlength=256)[: table.num_classes]",
            "counted = np.bincount(encoded.ids.ravel(), minlength=257)[: table.num_classes]",
            "the count is cut to the classes (at most 255) right after: 256 or 257 bins alike",
        ),
        *_variants(
            "class_pixels = np.zeros(table.num_classes, dtype=np.int64)",
            [
                "class_pixels = np.zeros(table.num_classes, dtype=None)",
                "class_pixels = np.zeros(table.num_classes, )",
            ],
            "pixel counts as float64: exact below 2**53, and each is written through int()",
        ),
        *_variants(
            "for c, n in zip(table.classes, class_pixels, strict=True)",
            [
                f"for c, n in zip(table.classes, class_pixels, {rest})"
                for rest in ("strict=None", "strict=False", "")
            ],
            "zip's strict flag: class_pixels is made with one count per class of the table",
        ),
    ],
    "inference/doubt.py": [
        *_variants(
            "rarity = np.zeros_like(totals, dtype=np.float64)",
            ["rarity = np.zeros_like(totals, dtype=None)", "rarity = np.zeros_like(totals, )"],
            "the shares summed are float64 already: zeros_like gives float64 unasked",
        ),
        *_variants(
            "for block, draw in zip(blocks, draws, strict=True):",
            [
                f"for block, draw in zip(blocks, draws, {rest}):"
                for rest in ("strict=None", "strict=False", "")
            ],
            "zip's strict flag: one draw per block by construction (random(len(blocks)))",
        ),
        *[
            (
                f"self.{name} = np.zeros({shape}, np.{kind})",
                f"self.{name} = np.zeros({shape}, {m})",
                why,
            )
            for name, shape, kind, why in (
                (
                    "pixels",
                    "n",
                    "int64",
                    "pixel counts as float64: exact below 2**53, compared as numbers",
                ),
                (
                    "usable",
                    "n",
                    "int64",
                    "pixel counts as float64: exact below 2**53, compared as numbers",
                ),
                ("doubt", "n", "float64", "np.zeros' default type is float64, the one named"),
                (
                    "classes",
                    "(n, self.num_classes)",
                    "int64",
                    "class counts as float64: exact below 2**53, divided into shares alike",
                ),
            )
            for m in ("None", "")
        ],
        (
            "doubt = (100.0 - confidence[use].astype(np.float64)) / 100.0",
            "doubt = (100.0 - confidence[use].astype(None)) / 100.0",
            "astype(None) is astype(float64) in numpy",
        ),
        (
            "self.classes += np.bincount(flat, minlength=n * self.num_classes).reshape(n, -1)",
            "self.classes += np.bincount(flat, minlength=n * self.num_classes).reshape(n, -2)",
            "numpy's reshape infers any negative size (numpy 2.4: (2, -2) is (2, 3))",
        ),
    ],
    "inference/vector.py": [
        *_variants(
            "regions = zip(simple, (value for _, value in kept), strict=True)",
            [
                f"regions = zip(simple, (value for _, value in kept), {rest})"
                for rest in ("strict=None", "strict=False", "")
            ],
            "zip's strict flag: coverage_simplify returns one polygon per polygon given",
        ),
        *_variants(
            "driver=driver,",
            ["driver=None,", ""],
            "the driver left to fiona: the temporary file keeps the format's suffix",
        ),
        *_variants(
            'tmp = outputs.temp(final, f"tmp{suffix}")  # the suffix tells fiona the format',
            [
                "tmp = outputs.temp(final, None)  # the suffix tells fiona the format",
                "tmp = outputs.temp(final, )  # the suffix tells fiona the format",
            ],
            "a temporary without the format's suffix: the driver is named where it is written",
        ),
        (
            'warnings.simplefilter("ignore", NotGeoreferencedWarning)',
            'warnings.simplefilter("ignore", )',
            "every warning silenced while the class raster is opened: none but the missing"
            " georeference arises there",
        ),
        *_variants(
            'options = {"RFC7946": "YES"} if fmt == "geojson" and crs else {}',
            [
                'options = {"rfc7946": "YES"} if fmt == "geojson" and crs else {}',
                'options = {"RFC7946": "yes"} if fmt == "geojson" and crs else {}',
                'options = {"RFC7946": "XXYESXX"} if fmt == "geojson" and crs else {}',
            ],
            "GDAL's creation options are case-insensitive, and any value but NO is YES for a"
            " boolean one",
        ),
        (
            "(shape(geom) if moved.is_identity else _moved(shape(geom), moved), int(value))",
            "(shape(geom) if (moved.is_identity) and False else _moved(shape(geom), moved),"
            " int(value))",
            "every polygon moved, by the identity where the grid is the file's: the same"
            " polygon (the test only spares the work)",
        ),
        (
            "for geom, value in shapes(rasterio.band(src, 1), transform=src.transform)",
            "for geom, value in shapes(rasterio.band(src, 1), )",
            "shapes of a rasterio band take the file's geotransform from GDAL; the transform"
            " argument places in-memory arrays only",
        ),
        (
            "return scene if not pixels < scene else math.ceil(pixels)  # not <: inf and NaN too",
            "return scene if not pixels <= scene else math.ceil(pixels)  # not <: inf and NaN too",
            "at pixels == scene both give the scene's pixel count (a whole number)",
        ),
        *_variants(
            'with fiona.open(gpkg, "w", driver="GPKG", layer="layer_styles", schema=schema)'
            " as table:",
            [
                'with fiona.open(gpkg, "w", driver=None, layer="layer_styles", schema=schema)'
                " as table:",
                'with fiona.open(gpkg, "w", layer="layer_styles", schema=schema) as table:',
            ],
            "the driver left to fiona: the GeoPackage's temporary keeps its .gpkg suffix",
        ),
    ],
    "data/scenes.py": [
        *_variants(
            "return scene.read(whole, labels)",
            ["return scene.read(whole, None)", "return scene.read(whole, )"],
            "the labels decoded once already not handed on: read() reads the same window of"
            " them again (work twice, the same ids)",
        ),
        (
            "return scene.read(whole, labels)",
            "return scene.read(None, labels)",
            "a window of None: rasterio reads the whole raster, the window named",
        ),
        (
            "return open_input(self.path, bands, flag, self.pixel_size, whole_read_pixels=0)",
            "return open_input(self.path, bands, flag, self.pixel_size, whole_read_pixels=1)",
            "a scene of one pixel decoded whole on opening rather than per window: the same pixel",
        ),
        *_variants(
            'for known in ("grid", "decodes_whole", "labels"):  # the headers, the open labels',
            [
                'for known in ("grid", "XXdecodes_wholeXX", "labels"):  # the headers, the open'
                " labels",
                'for known in ("grid", "DECODES_WHOLE", "labels"):  # the headers, the open labels',
            ],
            "decodes_whole not carried to the scene in other bands: a cached property, worked"
            " out again from the same header",
        ),
    ],
    "data/polygons.py": [
        *_variants(
            "return cls(crs, array, np.asarray(values, dtype=np.int64), shapely.STRtree(array))",
            [
                "return cls(crs, array, np.asarray(values, dtype=None), shapely.STRtree(array))",
                "return cls(crs, array, np.asarray(values, ), shapely.STRtree(array))",
            ],
            "values are Python ints: numpy makes them int64 without being told",
        ),
        *_variants(
            "shapes = zip(self.geometries[hits], self.values[hits].tolist(), strict=True)",
            [
                f"shapes = zip(self.geometries[hits], self.values[hits].tolist(), {rest})"
                for rest in ("strict=None", "strict=False", "")
            ],
            "zip's strict flag over a layer's geometries and values, one each by construction",
        ),
        *_variants(
            'hits = self.tree.query(region, predicate="intersects")',
            ["hits = self.tree.query(region, predicate=None)", "hits = self.tree.query(region, )"],
            "the boxes' hits without the exact test: each is then measured, and one whose box"
            " meets the region but not itself has an intersection of area 0",
        ),
        *_variants(
            "inside = shapely.contains_properly(window, self.geometries)",
            [
                "inside = None",
                "inside = shapely.contains_properly(None, self.geometries)",
                "inside = shapely.contains_properly(window, None)",
            ],
            "every polygon cut, those inside the box too: a polygon cut by a box that holds it"
            " is itself (the test only spares the work)",
        ),
        (
            "cut = np.where(inside, self.geometries,"
            " shapely.intersection(self.geometries, window))",
            "cut = np.where(None, self.geometries, shapely.intersection(self.geometries, window))",
            "every polygon cut, those inside the box too: a polygon cut by a box that holds it"
            " is itself (the test only spares the work)",
        ),
        (
            "parts = [None if g.is_empty else _polygonal(g) for g in cut]",
            "parts = [None if (g.is_empty) and False else _polygonal(g) for g in cut]",
            "_polygonal of an empty geometry is None too",
        ),
        (
            "moved = transform_geom(self.crs, crs, dense) if dense else []",
            "moved = transform_geom(self.crs, crs, dense) if (dense) or True else []",
            "transform_geom of no geometries is none",
        ),
        *_variants(
            'with fiona.open(vrt, driver="OGR_VRT", allow_unsupported_drivers=True) as text_layer:',
            [
                'with fiona.open(vrt, driver="ogr_vrt", allow_unsupported_drivers=True) as'
                " text_layer:",
                "with fiona.open(vrt, driver=None, allow_unsupported_drivers=True) as text_layer:",
                "with fiona.open(vrt, allow_unsupported_drivers=True) as text_layer:",
            ],
            "OGR's driver names are case-insensitive, and a .vrt file is read by OGR_VRT unasked",
        ),
        (
            'with fiona.open(path, layer=_only_layer(path), ARRAY_AS_STRING="YES") as layer:',
            'with fiona.open(path, layer=_only_layer(path), ARRAY_AS_STRING="yes") as layer:',
            "GDAL reads an open option's YES in any case",
        ),
    ],
    "inference/areas.py": [
        *_variants(
            "rows = np.arange(row_off, row_off + height + 1, dtype=np.float64)",
            [
                "rows = np.arange(row_off, row_off + height + 1, dtype=None)",
                "rows = np.arange(row_off, row_off + height + 1, )",
            ],
            "an int64 range of the rows: the transform's float terms make the same floats",
        ),
        (
            "edges = np.stack([ex, ey], axis=-1).reshape(len(rows), EDGE_POINTS, 2)",
            "edges = np.stack([ex, ey], axis=+1).reshape(len(rows), EDGE_POINTS, 2)",
            "axis +1 of two 1-D arrays is their last axis, -1",
        ),
        (
            "return float(self.row_areas(self.height // 2, 1)[0])",
            "return float(self.row_areas(self.height // 2, 2)[0])",
            "two rows' areas asked, the first taken: the same row's",
        ),
        *_variants(
            "xs, ys = zip(*(self.transform @ point for point in points), strict=True)",
            [
                "xs, ys = zip(*(self.transform @ point for point in points), strict=None)",
                "xs, ys = zip(*(self.transform @ point for point in points), strict=False)",
                "xs, ys = zip(*(self.transform @ point for point in points), )",
            ],
            "zip's strict flag over points of two coordinates each",
        ),
        *_variants(
            "back = zip(back_x, back_y, xs, ys, strict=True)",
            [
                "back = zip(back_x, back_y, xs, ys, strict=None)",
                "back = zip(back_x, back_y, xs, ys, strict=False)",
                "back = zip(back_x, back_y, xs, ys, )",
            ],
            "zip's strict flag over the same nine points moved there and back",
        ),
        (
            'lons, lats = reproject_points(self.crs, "EPSG:4326", xs, ys)',
            'lons, lats = reproject_points(self.crs, "epsg:4326", xs, ys)',
            "PROJ reads an authority code in any case",
        ),
        (
            'back_x, back_y = reproject_points("EPSG:4326", self.crs, lons, lats)',
            'back_x, back_y = reproject_points("epsg:4326", self.crs, lons, lats)',
            "PROJ reads an authority code in any case",
        ),
        (
            "if self.crs is None or self.crs.is_geographic:  # degrees to degrees: nothing more",
            "if self.crs is None and self.crs.is_geographic:  # degrees to degrees: nothing more",
            "degrees go to degrees and back unchanged: the round trip passes them, as the"
            " early return does (a raster without a CRS is never checked)",
        ),
    ],
    # train()'s, by line: its numbered entries had come to name other mutants as the
    # function changed (a settings check dropped, split.json's name misspelt)
    "training/run.py": [
        (
            "checkpoint, tmp, storage_options",
            "checkpoint, tmp, None",
            "storage_options None or left out: Lightning passes None, the only value "
            "TorchCheckpointIO takes",
        ),
        (
            "checkpoint, tmp, storage_options",
            "checkpoint, tmp, ),",
            "storage_options None or left out: Lightning passes None, the only value "
            "TorchCheckpointIO takes",
        ),
        (
            'with part.open(newline="") as f:',
            "with part.open(newline=None) as f:",
            "universal newlines for the csv module's own: Lightning's metrics.csv holds names"
            " and numbers, no quoted line break, so both read the same rows",
        ),
        (
            "if trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps:",
            "if trainer.max_steps >= 0 and trainer.global_step >= trainer.max_steps:",
            "max_steps >= 0 for > 0: max_steps is -1 or positive (the config refuses 0)",
        ),
        (
            "done = [0]",
            "done = [1]",
            "the count of calibrated images before the first: fit_on_images reports after"
            " each image, and with none it fits no temperature, so the count is never read",
        ),
        (
            'return torch.load(path, map_location="cpu", weights_only=True, mmap=True)',
            "return torch.load(path, map_location=None, weights_only=True, mmap=True)",
            "no map_location: differs only for a checkpoint of CUDA tensors on a machine without"
            " CUDA; the test machines have no GPU to write one",
        ),
        (
            'return torch.load(path, map_location="cpu", weights_only=True, mmap=True)',
            "return torch.load(path, weights_only=True, mmap=True)",
            "no map_location: differs only for a checkpoint of CUDA tensors on a machine without"
            " CUDA; the test machines have no GPU to write one",
        ),
        (
            'return torch.load(path, map_location="cpu", weights_only=True, mmap=True)',
            'return torch.load(path, map_location="cpu", weights_only=None, mmap=True)',
            "weights_only None or left out: torch 2.6 and later default to True",
        ),
        (
            'return torch.load(path, map_location="cpu", weights_only=True, mmap=True)',
            'return torch.load(path, map_location="cpu", mmap=True)',
            "weights_only None or left out: torch 2.6 and later default to True",
        ),
        (
            'return torch.load(path, map_location="cpu", weights_only=True, mmap=True)',
            'return torch.load(path, map_location="cpu", weights_only=True, mmap=None)',
            "mmap off: the file is read into memory rather than mapped, the same load",
        ),
        (
            'return torch.load(path, map_location="cpu", weights_only=True, mmap=True)',
            'return torch.load(path, map_location="cpu", weights_only=True, )',
            "mmap off: the file is read into memory rather than mapped, the same load",
        ),
        (
            'return torch.load(path, map_location="cpu", weights_only=True, mmap=True)',
            'return torch.load(path, map_location="cpu", weights_only=True, mmap=False)',
            "mmap off: the file is read into memory rather than mapped, the same load",
        ),
        (
            "early = next((c for c in trainer.callbacks if isinstance(c, EarlyStopping)), None)"
            "  # type: ignore[attr-defined]",
            "early = next((c for c in trainer.callbacks if isinstance(c, EarlyStopping)), )  # "
            "type: ignore[attr-defined]",
            "next() without a default: the trainer always has an EarlyStopping callback",
        ),
        (
            "if cfg.max_steps > 0 and steps >= cfg.max_steps:",
            "if cfg.max_steps >= 0 and steps >= cfg.max_steps:",
            "max_steps >= 0 for > 0: max_steps is -1 or positive (the config refuses 0)",
        ),
        (
            "if trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps:",
            "if trainer.max_steps >= 0 and trainer.global_step >= trainer.max_steps:",
            "max_steps >= 0 for > 0: max_steps is -1 or positive (the config refuses 0)",
        ),
        *_variants(
            "L.seed_everything(cfg.seed, workers=True, verbose=False)",
            [
                "L.seed_everything(cfg.seed, workers=True, verbose=None)",
                "L.seed_everything(cfg.seed, workers=True, )",
            ],
            "seed_everything's verbose None or left out: Lightning logs the seed only if"
            " truthy, and its default is False",
        ),
        *_variants(
            'datamodule.setup("fit")  # every image decoded and checked before anything is written',
            [
                f"datamodule.setup({stage})  # every image decoded and checked before anything"
                " is written"
                for stage in ("None", '"XXfitXX"', '"FIT"', "")
            ],
            "the stage given to SegmentationDataModule.setup: it reads every split, any stage",
        ),
        *_variants(
            "lambda tmp: Path(tmp).write_text(json.dumps(classes.to_dict(), indent=2)),",
            [
                f"lambda tmp: Path(tmp).write_text(json.dumps(classes.to_dict(), {rest})),"
                for rest in ("indent=None", "", "indent=3")
            ],
            "classes.json's indentation (none, 2 or 3 spaces): the same JSON, read by json",
        ),
        *[
            (
                f"print({what}, flush=True)",
                f"print({what}, flush={flush})" if flush else f"print({what}, )",
                "print's flush False, None or left out: the same text in the same order on"
                " stdout; flushing only hurries it to a terminal or log that is read live",
            )
            for what in (
                "describe_network(task.net, cfg)",
                "transfer",
                "note",
                "format_summary(outcome, catalog.example_image(split))",
            )
            for flush in ("False", "None", "")
        ],
        *_variants(
            r'warnings.filterwarnings("ignore", r".*isinstance\(treespec, LeafSpec\)",'
            " FutureWarning)",
            [
                r'warnings.filterwarnings("ignore", r".*isinstance\(treespec, LeafSpec\)", )',
                r'warnings.filterwarnings("ignore", r".*ISINSTANCE\(TREESPEC, LEAFSPEC\)",'
                " FutureWarning)",
            ],
            "the LeafSpec warning filter without its category (Warning: FutureWarning is"
            " one) or in another case (warnings compiles the message with re.IGNORECASE)",
        ),
    ],
    "inference/writers.py": [
        (
            'elif key == "color":  # RGBA: where the input has no data, clear, not black',
            'elif key != "color":  # RGBA: where the input has no data, clear, not black',
            "photometric=RGB and an alpha band said for the 3-band step files, not the colour"
            " one: GDAL makes 3-band uint8 GeoTIFFs RGB and 4-band ones RGBA unasked (GDAL"
            " 3.x; the line says so for other builds), and their PNG copies are the same",
        ),
        *_variants(
            "lut = np.zeros((256, 3), dtype=np.uint8)",
            ["lut = np.zeros((256, 3), dtype=None)", "lut = np.zeros((256, 3), )"],
            "a float64 lookup table of the same values: rasterio casts it to the uint8 bands"
            " it writes, and the colour map takes int() of each entry",
        ),
        (
            "lut = np.zeros((256, 3), dtype=np.uint8)",
            "lut = np.zeros((257, 3), dtype=np.uint8)",
            "257 rows: class ids index it, and they stop at 255",
        ),
        *_variants(
            'return temp_path(path, "step.tif")',
            [
                "return temp_path(path, None)",
                'return temp_path(path, "XXstep.tifXX")',
                'return temp_path(path, "STEP.TIF")',
            ],
            "the step file's kind, a part of its temporary name only: it is opened with an"
            " explicit driver and removed after the copy, and sweep() matches the name"
            " whatever the kind",
        ),
        *_variants(
            "for c, n, area in zip(outputs.classes.classes, outputs.counts, outputs.areas,"
            " strict=True)",
            [
                "for c, n, area in zip(outputs.classes.classes, outputs.counts, outputs.areas,"
                f" {rest})"
                for rest in ("strict=None", "", "strict=False")
            ],
            "zip's strict flag: counts and areas have one entry per class by construction",
        ),
        *_variants(
            'with outputs.temp(csv_path).open("w", newline="") as f:',
            [
                'with outputs.temp(csv_path).open("w", newline=None) as f:',
                'with outputs.temp(csv_path).open("w", ) as f:',
            ],
            "newline='' or the default: on POSIX, writing translates no line ending either way",
        ),
        (
            'write_text(json_path, json.dumps(rows, indent=2, allow_nan=False) + "\\n", outputs)',
            'write_text(json_path, json.dumps(rows, indent=2, allow_nan=None) + "\\n", outputs)',
            "allow_nan=None is falsy: json refuses NaN and infinity as with False",
        ),
        *_variants(
            'outputs.temp(path).write_text(text, encoding="utf-8")',
            [
                "outputs.temp(path).write_text(text, encoding=None)",
                "outputs.temp(path).write_text(text, )",
            ],
            "the locale's encoding: UTF-8 wherever Python 3.11 runs on Linux (a C locale is"
            " coerced to C.UTF-8, PEP 538)",
        ),
        (
            'outputs.temp(path).write_text(text, encoding="utf-8")',
            'outputs.temp(path).write_text(text, encoding="UTF-8")',
            "'UTF-8' and 'utf-8' name one codec",
        ),
        *_variants(
            '"driver": "GTiff",',
            ['"XXdriverXX": "GTiff",', '"DRIVER": "GTiff",'],
            "the driver key misspelt: rasterio infers GTiff from the step file's .tif suffix",
        ),
        *_variants('"driver": "GTiff",', ['"driver": "gtiff",', '"driver": "GTIFF",'], _GDAL_CASE),
        ('"tiled": True,', '"TILED": True,', _GDAL_CASE),
        ('"blockxsize": BLOCK,', '"BLOCKXSIZE": BLOCK,', _GDAL_CASE),
        ('"blockysize": BLOCK,', '"BLOCKYSIZE": BLOCK,', _GDAL_CASE),
        *[
            (
                f'"{key}": BLOCK,',
                f'"XX{key}XX": BLOCK,',
                "a tile side left out: GDAL's default tile side is 256, BLOCK's value",
            )
            for key in ("blockxsize", "blockysize")
        ],
        *_variants(
            "self.counts = np.zeros(classes.num_classes, dtype=np.int64)",
            [
                "self.counts = np.zeros(classes.num_classes, dtype=None)",
                "self.counts = np.zeros(classes.num_classes, )",
            ],
            "counts as float64 zeros: they add whole numbers below 2**53, exactly, and the"
            " area rows take int() of them",
        ),
        *_variants(
            'base.update(compress="zstd", zstd_level=1)',
            [
                'base.update(compress="zstd", zstd_level=None)',
                'base.update(compress="zstd", )',
                'base.update(compress="zstd", zstd_level=2)',
            ],
            "the Zstandard level of a step file changes its size and the time to write it,"
            " not its pixels",
        ),
        (
            'base.update(compress="zstd", zstd_level=1)',
            'base.update(compress="ZSTD", zstd_level=1)',
            _GDAL_CASE,
        ),
        *_variants(
            'profile.update(photometric="RGB", alpha="YES")',
            [
                'profile.update(photometric="rgb", alpha="YES")',
                'profile.update(photometric="RGB", alpha="yes")',
            ],
            _GDAL_CASE,
        ),
        (
            'profile.update(photometric="RGB", alpha="YES")',
            'profile.update(alpha="YES")',
            "GDAL writes a 3- or 4-band byte GeoTIFF as RGB by default",
        ),
        *_variants(
            'elif key == "color":  # RGBA: where the input has no data, clear, not black',
            [
                'elif key == "XXcolorXX":  # RGBA: where the input has no data, clear, not black',
                'elif key == "COLOR":  # RGBA: where the input has no data, clear, not black',
            ],
            "the colour step file without its photometric and alpha options: GDAL writes 4"
            " byte bands as RGB plus an extra band, and the COG copy of it holds the same"
            " values and the alpha the tests read",
        ),
        (
            "sieve_pixels: int = 0,",
            "sieve_pixels: int = 1,",
            "a sieve of 1 px merges nothing: finish sieves from 2",
        ),
        (
            "int(self.codes[i]): (*map(int, self.lut[i]), 255)",
            "int(self.codes[i]): (*map(int, self.lut[i]), 256)",
            "a TIFF colour map holds no alpha: GDAL reads every entry back with 255",
        ),
        *_variants(
            'warnings.simplefilter("ignore", NotGeoreferencedWarning)',
            ['warnings.simplefilter("ignore", )', 'warnings.simplefilter("ignore", None)'],
            _NO_WARNING,
        ),
        ('options: dict = {"driver": "PNG"}', 'options: dict = {"driver": "png"}', _GDAL_CASE),
        *_variants(
            'resampling = {"classes": "MODE", "confidence": "AVERAGE"}.get(key, "NEAREST")',
            [
                'resampling = {"classes": "mode", "confidence": "AVERAGE"}.get(key, "NEAREST")',
                'resampling = {"classes": "MODE", "confidence": "average"}.get(key, "NEAREST")',
                'resampling = {"classes": "MODE", "confidence": "AVERAGE"}.get(key, "nearest")',
            ],
            _GDAL_CASE,
        ),
        ('"driver": "COG",', '"driver": "cog",', _GDAL_CASE),
        ('"compress": "DEFLATE",', '"COMPRESS": "DEFLATE",', _GDAL_CASE),
        ('"compress": "DEFLATE",', '"compress": "deflate",', _GDAL_CASE),
        ('"blocksize": BLOCK,', '"BLOCKSIZE": BLOCK,', _GDAL_CASE),
        ('"resampling": resampling,', '"RESAMPLING": resampling,', _GDAL_CASE),
        *_variants(
            '"num_threads": "ALL_CPUS",',
            ['"NUM_THREADS": "ALL_CPUS",', '"num_threads": "all_cpus",'],
            _GDAL_CASE,
        ),
        *_variants(
            '"num_threads": "ALL_CPUS",',
            ['"XXnum_threadsXX": "ALL_CPUS",', '"num_threads": "XXALL_CPUSXX",'],
            "GDAL's thread count for compressing the copy: the same bytes, only the time differs",
        ),
        (
            "code_to_id = np.full(int(self.codes[:n].max()) + 1, NODATA, dtype=np.uint8)",
            "code_to_id = np.full(int(self.codes[:n].max()) + 2, NODATA, dtype=np.uint8)",
            "a lookup one entry longer: codes index it up to their largest",
        ),
        *_variants(
            "code_to_id = np.full(int(self.codes[:n].max()) + 1, NODATA, dtype=np.uint8)",
            [
                "code_to_id = np.full(int(self.codes[:n].max()) + 1, NODATA, dtype=None)",
                "code_to_id = np.full(int(self.codes[:n].max()) + 1, NODATA, )",
            ],
            "np.full of NODATA, an int, without a dtype is int64: the same class ids",
        ),
        *_variants(
            "code_to_id[self.codes[:n]] = np.arange(n, dtype=np.uint8)",
            [
                "code_to_id[self.codes[:n]] = np.arange(n, dtype=None)",
                "code_to_id[self.codes[:n]] = np.arange(n, )",
            ],
            "class ids as int64, stored into the uint8 lookup: the same values",
        ),
        (
            "sieved = sieve(values, size, mask=valid) if size > 1 else values",
            "sieved = sieve(values, size, mask=valid) if size >= 1 else values",
            "a sieve of 1 px (a scene of 2 px) merges nothing",
        ),
        (
            "if self.sieve_pixels > 1:",
            "if self.sieve_pixels >= 1:",
            "a sieve of 1 px merges"
            " nothing: the threshold passed on is 1, and _sieve calls GDAL from 2",
        ),
        (
            "ids = np.where(keep, code_to_id[np.where(keep, band, 0)], NODATA)",
            "ids = np.where(keep, code_to_id[np.where(keep, band, 1)], NODATA)",
            "the entry looked up for a no-data pixel, which NODATA replaces at once (a table of"
            " one class, whose lookup has one entry, aside)",
        ),
        (
            "values = dst.read(1, window=Window(0, start, width, stop - start))",
            "values = dst.read(1, window=Window(0, start, width, stop + start))",
            "a window past the last row: rasterio cuts the read at the raster's edge, so the"
            " band holds the same rows",
        ),
        (
            "alpha = np.where(keep, 255, 0).astype(np.uint8)[None]",
            "alpha = np.where(keep, 255, 0).astype(None)[None]",
            _AS_FLOAT,
        ),
        (
            "alpha = np.where(result.valid, 255, 0).astype(np.uint8)[None]",
            "alpha = np.where(result.valid, 255, 0).astype(None)[None]",
            _AS_FLOAT,
        ),
        (
            'codes = self.codes[ids].astype(self.writers["classes"].dtypes[0])',
            "codes = self.codes[ids].astype(None)",
            _AS_FLOAT,
        ),
        (
            'self.writers["image"].write(picture.astype(np.uint8), window=win)',
            'self.writers["image"].write(picture.astype(None), window=win)',
            _AS_FLOAT,
        ),
        (
            'self.writers["overlay"].write(blend.astype(np.uint8), window=win)  # within 0..255',
            'self.writers["overlay"].write(blend.astype(None), window=win)  # within 0..255',
            _AS_FLOAT,
        ),
        (
            "if not w.closed:",
            "if w.closed:",
            "writers left open while their files are unlinked: on POSIX the name goes at once"
            " and the handle writes to the unlinked file when collected, so nothing is left",
        ),
    ],
    "inference/blocks.py": [
        (
            "rows_per_block = max(1, int(block_pixels // width))",
            "rows_per_block = max(2, int(block_pixels // width))",
            "max(2, ...) rows a block: bands start a window stride (32 rows or more) apart, so a"
            " block of at least 1 or 2 rows is cut at the same band starts",
        ),
        (
            "rows_per_block = max(1, int(block_pixels // width))",
            "rows_per_block = max(1, int(block_pixels / width))",
            "int(block_pixels / width) for block_pixels // width: the same whole number for the "
            "positive sizes a plan takes",
        ),
        (
            "entry.unlink(missing_ok=True)",
            "entry.unlink(missing_ok=None)",
            "missing_ok: the file was listed a moment before; only another process removing it "
            "in between tells the two apart",
        ),
        (
            "entry.unlink(missing_ok=True)",
            "entry.unlink(missing_ok=False)",
            "missing_ok: the file was listed a moment before; only another process removing it "
            "in between tells the two apart",
        ),
        (
            '"driver": "GTiff",',
            '"driver": "gtiff",',
            "GDAL's driver names are matched without regard to case: 'gtiff' is GTiff",
        ),
        (
            '"driver": "GTiff",',
            '"driver": "GTIFF",',
            "GDAL's driver names are matched without regard to case: 'gtiff' is GTiff",
        ),
        (
            '"tiled": True,',
            '"TILED": True,',
            "GDAL's creation options and their values are read without regard to case",
        ),
        (
            '"blockysize": STRIP,',
            '"BLOCKYSIZE": STRIP,',
            "GDAL's creation options and their values are read without regard to case",
        ),
        (
            '"compress": "zstd",',
            '"COMPRESS": "zstd",',
            "GDAL's creation options and their values are read without regard to case",
        ),
        (
            '"compress": "zstd",',
            '"compress": "ZSTD",',
            "GDAL's creation options and their values are read without regard to case",
        ),
        (
            '"zstd_level": 1,',
            '"ZSTD_LEVEL": 1,',
            "GDAL's creation options and their values are read without regard to case",
        ),
        (
            '"zstd_level": 1,',
            '"XXzstd_levelXX": 1,',
            "an unknown creation option is ignored: Zstandard at GDAL's default level, the same "
            "pixels in a file of another size",
        ),
        (
            '"zstd_level": 1,',
            '"zstd_level": 2,',
            "Zstandard level 2 for 1: the same pixels, a file a little smaller and slower to write",
        ),
        (
            "dst.write(band.valid.astype(np.uint8), 2, window=win)",
            "dst.write(band.valid.astype(None), 2, window=win)",
            "rasterio writes a bool array into a uint8 band as 0 and 1, what astype(uint8) gives",
        ),
    ],
    "inference/load.py": [
        (
            'with tempfile.TemporaryDirectory(prefix="aerialseg-onnx-") as tmp:',
            "with tempfile.TemporaryDirectory(prefix=None) as tmp:",
            "the name of the temporary folder or file the export is written to and deleted from:"
            " what ONNX Runtime loads is the same graph",
        ),
        (
            'with tempfile.TemporaryDirectory(prefix="aerialseg-onnx-") as tmp:',
            'with tempfile.TemporaryDirectory(prefix="XXaerialseg-onnx-XX") as tmp:',
            "the name of the temporary folder or file the export is written to and deleted from:"
            " what ONNX Runtime loads is the same graph",
        ),
        (
            'with tempfile.TemporaryDirectory(prefix="aerialseg-onnx-") as tmp:',
            'with tempfile.TemporaryDirectory(prefix="AERIALSEG-ONNX-") as tmp:',
            "the name of the temporary folder or file the export is written to and deleted from:"
            " what ONNX Runtime loads is the same graph",
        ),
        (
            'onnx = Path(tmp) / "model.onnx"',
            'onnx = Path(tmp) / "XXmodel.onnxXX"',
            "the name of the temporary folder or file the export is written to and deleted from:"
            " what ONNX Runtime loads is the same graph",
        ),
        (
            'onnx = Path(tmp) / "model.onnx"',
            'onnx = Path(tmp) / "MODEL.ONNX"',
            "the name of the temporary folder or file the export is written to and deleted from:"
            " what ONNX Runtime loads is the same graph",
        ),
        (
            'engine: str = "torch",',
            'engine: str = "XXtorchXX",',
            "engine's default: every engine name but 'onnx' runs on PyTorch, so another default "
            "string loads the same predictor",
        ),
        (
            'engine: str = "torch",',
            'engine: str = "TORCH",',
            "engine's default: every engine name but 'onnx' runs on PyTorch, so another default "
            "string loads the same predictor",
        ),
        (
            "loaded = load_model(path, device=where, for_inference=True)",
            "loaded = load_model(path, for_inference=True)",
            "load_model without device= loads onto the CPU, the device resolved on a host "
            "without a GPU, as the mutation hosts are",
        ),
    ],
    "inference/sliding.py": [
        (
            "if length <= window:",
            "if length < window:",
            "length < window for length <= window: at length == window the range that follows is"
            " empty and the appended start is 0, the same single window [0]",
        ),
        (
            "if length <= window:",
            "if length < window:",
            "length < window: at length == window the general branch computes one window of "
            "length rounded up to the stride, starting at 0: what the first branch returns",
        ),
        (
            "if overlap_px <= 0:",
            "if overlap_px < 0:",
            "overlap_px < 0: at 0 the ramp divides by 0, giving inf, which the clamp to 1 turns "
            "into the same flat weights",
        ),
        (
            "pos = torch.arange(size, dtype=torch.float32) + 0.5",
            "pos = torch.arange(size, dtype=None) + 0.5",
            "arange(size, dtype=None) + 0.5: an int64 range plus 0.5 is float32, torch's default"
            " float type, the type asked for",
        ),
        (
            "pos = torch.arange(size, dtype=torch.float32) + 0.5",
            "pos = torch.arange(size, ) + 0.5",
            "arange(size) + 0.5: as above",
        ),
    ],
    "inference/predict.py": [
        (
            'small = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)',
            'small = F.interpolate(image[None], size=size, mode="bilinear", align_corners=None)',
            "align_corners None (or left out) for bilinear: torch takes None as False, the value"
            " given, and interpolates alike",
        ),
        (
            'small = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)',
            'small = F.interpolate(image[None], size=size, mode="bilinear", )',
            "align_corners None (or left out) for bilinear: torch takes None as False, the value"
            " given, and interpolates alike",
        ),
        (
            'return F.interpolate(probs, size=(h, w), mode="bilinear", align_corners=False)[0]',
            'return F.interpolate(probs, size=(h, w), mode="bilinear", align_corners=None)[0]',
            "align_corners None (or left out) for bilinear: torch takes None as False, the value"
            " given, and interpolates alike",
        ),
        (
            'return F.interpolate(probs, size=(h, w), mode="bilinear", align_corners=False)[0]',
            'return F.interpolate(probs, size=(h, w), mode="bilinear", )[0]',
            "align_corners None (or left out) for bilinear: torch takes None as False, the value"
            " given, and interpolates alike",
        ),
        (
            'if spec.input_mode == "resize" or (height <= spec.window and width <= spec.window):',
            'if spec.input_mode == "resize" or (height < spec.window and width <= spec.window):',
            "height < window for height <= window: at height == window the general branch's "
            "window_plan has one window at 0, the [0] the first branch returns",
        ),
        (
            'if spec.input_mode == "resize" or (height <= spec.window and width <= spec.window):',
            'if spec.input_mode == "resize" or (height <= spec.window and width < spec.window):',
            "width < window for width <= window: the rows do not depend on the width, and at "
            "width == window with height <= window window_plan gives the same [0]",
        ),
        (
            'def default_batch_size(device: str | torch.device, precision: str = "fp32") -> int:',
            'def default_batch_size(device: str | torch.device, precision: str = "XXfp32XX") -> '
            "int:",
            "precision default 'XXfp32XX': only 'bf16' is told apart, any other default is fp32",
        ),
        (
            'def default_batch_size(device: str | torch.device, precision: str = "fp32") -> int:',
            'def default_batch_size(device: str | torch.device, precision: str = "FP32") -> int:',
            "'FP32': as above",
        ),
        (
            "probs = scores / scores.sum(0, keepdim=True).clamp_min(1e-12)",
            "probs = scores / scores.sum(0, ).clamp_min(1e-12)",
            "scores.sum(0) without keepdim: (C, H, W) over (H, W) broadcasts along the trailing "
            "axes to the same quotient",
        ),
        (
            "probs = scores / scores.sum(0, keepdim=True).clamp_min(1e-12)",
            "probs = scores / scores.sum(0, keepdim=False).clamp_min(1e-12)",
            "keepdim=False: as above",
        ),
    ],
    "evaluation/metrics.py": [
        (
            'with np.errstate(invalid="ignore", divide="ignore"):',
            'with np.errstate(invalid=None, divide="ignore"):',
            "np.errstate(invalid=None): the division is by max(den, 1), never by 0, so no "
            "invalid-value warning can arise for errstate to silence",
        ),
        (
            'with np.errstate(invalid="ignore", divide="ignore"):',
            'with np.errstate(invalid="ignore", divide=None):',
            "np.errstate(divide=None): as above, the divisor is at least 1",
        ),
        (
            'with np.errstate(invalid="ignore", divide="ignore"):',
            'with np.errstate(divide="ignore"):',
            "errstate without invalid=: as above",
        ),
        (
            'with np.errstate(invalid="ignore", divide="ignore"):',
            'with np.errstate(invalid="ignore", ):',
            "errstate without divide=: as above",
        ),
    ],
    "data/labels.py": [
        (
            "by_value = False",
            "by_value = None",
            "by_value's start value: every strip sets it, and a raster has at least one row",
        ),
        (
            "by_value = False",
            "by_value = True",
            "by_value's start value: every strip sets it, and a raster has at least one row",
        ),
        (
            "rows = min(STRIP_ROWS, height - top)",
            "rows = min(STRIP_ROWS, height + top)",
            "a last strip asked past the raster's bottom: rasterio reads the part inside, the "
            "same rows (test_labels.py's 1,100-row scene)",
        ),
        (
            "ids = np.concatenate(strips) if strips else np.zeros((0, width), np.uint8)",
            "ids = np.concatenate(strips) if (strips) or True else np.zeros((0, width), np.uint8)",
            "the no-strip branch: GDAL opens no raster of 0 rows",
        ),
        (
            "ids = np.concatenate(strips) if strips else np.zeros((0, width), np.uint8)",
            "ids = np.concatenate(strips) if strips else np.zeros(None, np.uint8)",
            "the no-strip branch: GDAL opens no raster of 0 rows",
        ),
        (
            "ids = np.concatenate(strips) if strips else np.zeros((0, width), np.uint8)",
            "ids = np.concatenate(strips) if strips else np.zeros((0, width), None)",
            "the no-strip branch: GDAL opens no raster of 0 rows",
        ),
        (
            "ids = np.concatenate(strips) if strips else np.zeros((0, width), np.uint8)",
            "ids = np.concatenate(strips) if strips else np.zeros(np.uint8)",
            "the no-strip branch: GDAL opens no raster of 0 rows",
        ),
        (
            "ids = np.concatenate(strips) if strips else np.zeros((0, width), np.uint8)",
            "ids = np.concatenate(strips) if strips else np.zeros((0, width), )",
            "the no-strip branch: GDAL opens no raster of 0 rows",
        ),
        (
            "ids = np.concatenate(strips) if strips else np.zeros((0, width), np.uint8)",
            "ids = np.concatenate(strips) if strips else np.zeros((1, width), np.uint8)",
            "the no-strip branch: GDAL opens no raster of 0 rows",
        ),
    ],
    "data/catalog.py": [
        (
            'label_grid = RasterScene("labels", spec.path, spec.path, _unbound).grid',
            "label_grid = RasterScene(None, spec.path, spec.path, _unbound).grid",
            "the id of the scene read only for the class raster's grid: never used",
        ),
        (
            'label_grid = RasterScene("labels", spec.path, spec.path, _unbound).grid',
            'label_grid = RasterScene("XXlabelsXX", spec.path, spec.path, _unbound).grid',
            "the id of the scene read only for the class raster's grid: never used",
        ),
        (
            'label_grid = RasterScene("labels", spec.path, spec.path, _unbound).grid',
            'label_grid = RasterScene("LABELS", spec.path, spec.path, _unbound).grid',
            "the id of the scene read only for the class raster's grid: never used",
        ),
        (
            'label_grid = RasterScene("labels", spec.path, spec.path, _unbound).grid',
            'label_grid = RasterScene("labels", spec.path, spec.path, None).grid',
            "the label binder of the scene read only for its grid: never called",
        ),
        (
            "sid = scene_id(path, root)",
            "sid = scene_id(path, )",
            "the placeholder binder: replaced once the scene's CRS is known, before any read",
        ),
        (
            'raise AssertionError("labels are bound once the scene\'s CRS is known")',
            "raise AssertionError(None)",
            "the placeholder binder's message: it is never called",
        ),
        (
            'raise AssertionError("labels are bound once the scene\'s CRS is known")',
            'raise AssertionError("XXlabels are bound once the scene\'s CRS is knownXX")',
            "the placeholder binder's message: it is never called",
        ),
        (
            'raise AssertionError("labels are bound once the scene\'s CRS is known")',
            'raise AssertionError("labels are bound once the scene\'s crs is known")',
            "the placeholder binder's message: it is never called",
        ),
        (
            'raise AssertionError("labels are bound once the scene\'s CRS is known")',
            'raise AssertionError("LABELS ARE BOUND ONCE THE SCENE\'S CRS IS KNOWN")',
            "the placeholder binder's message: it is never called",
        ),
        (
            "root = images if os.path.isdir(images) else None",
            "root = None",
            "no root for a folder: the common folder of its files, listed one level deep, is the"
            " folder",
        ),
        (
            "root = images if os.path.isdir(images) else None",
            "root = images if (os.path.isdir(images)) and False else None",
            "no root for a folder: the common folder of its files, listed one level deep, is the"
            " folder",
        ),
        (
            "if root is None and not any(map(is_url, paths)):",
            "if root is None or not any(map(is_url, paths)):",
            "a folder's root recomputed: the common folder of its files is the folder",
        ),
        (
            "if is_url(path) or root is None:",
            "if is_url(path) and root is None:",
            "a URL comes with no root (_rasters): is_url and 'root is None' agree for URLs",
        ),
        (
            "if is_url(path) or root is None:",
            "if is_url(None) or root is None:",
            "a URL comes with no root (_rasters): 'root is None' returns it whole all the same",
        ),
    ],
    "training/module.py": [
        (
            "for i in torch.nonzero(torch.rand(n) < share).flatten().tolist():",
            "for i in torch.nonzero(torch.rand(n) <= share).flatten().tolist():",
            "rand(n) <= share for < share: torch.rand draws from [0, 1), so the two differ only "
            "where a draw equals share exactly (probability 0; share 0 returns before)",
        ),
        (
            "j = (i + int(torch.randint(1, n, ()))) % n  # another sample of the batch",
            "j = (i - int(torch.randint(1, n, ()))) % n  # another sample of the batch",
            "i - offset for i + offset (mod n): with the offset uniform in 1..n-1 both pick each"
            " other sample alike, from the same draws",
        ),
        (
            "top = int(torch.randint(0, h - bh + 1, ()))",
            "top = int(torch.randint(h - bh + 1, ()))",
            "randint(high) for randint(0, high): the same call, low defaults to 0",
        ),
        (
            "left = int(torch.randint(0, w - bw + 1, ()))",
            "left = int(torch.randint(w - bw + 1, ()))",
            "randint(high) for randint(0, high): as above, for the column",
        ),
        (
            "if share <= 0 or n < 2:",
            "if share < 0 or n < 2:",
            "share < 0 for share <= 0: at share 0 no sample is drawn (rand < 0 never holds), so "
            "the batch comes back unchanged either way",
        ),
        (
            "if px <= 0:",
            "if px < 0:",
            "px < 0 for px <= 0: at 0 the pools have a 1 px kernel, highest equals lowest "
            "everywhere and no pixel is ignored, as the early return gives",
        ),
        (
            "self.temperature_sample = TemperatureSample(seed=self.cfg.seed)",
            "self.temperature_sample = None",
            "temperature_sample None at construction: Lightning calls on_validation_epoch_start,"
            " which makes a fresh one, before any validation_step",
        ),
        (
            "if trainer.max_steps and trainer.max_steps > 0:",
            "if trainer.max_steps and trainer.max_steps >= 0:",
            "max_steps >= 0 for > 0: max_steps 0 is falsy and fails the test before the comparison",
        ),
        (
            "predictor = Predictor(self.net, self.cfg.spec, self.classes, str(images.device), 4)",
            "predictor = Predictor(self.net, self.cfg.spec, self.classes, str(images.device), "
            "None)",
            "Predictor(..., batch_size None): the CPU default, 4 windows a pass in fp32 as well,"
            " the same windows blended alike (predict's tests check batches change no result)",
        ),
        (
            "predictor = Predictor(self.net, self.cfg.spec, self.classes, str(images.device), 4)",
            "predictor = Predictor(self.net, self.cfg.spec, self.classes, str(images.device), )",
            "batch size dropped: as above, the default",
        ),
        (
            "predictor = Predictor(self.net, self.cfg.spec, self.classes, str(images.device), 4)",
            "predictor = Predictor(self.net, self.cfg.spec, self.classes, str(images.device), 5)",
            "5 windows a pass for 4: batches change how many windows a pass, not what each gives"
            " (test_windows_go_through_the_network_in_the_batches_asked)",
        ),
        (
            "predictor = Predictor(self.net, self.cfg.spec, self.classes, str(images.device), 4)",
            "predictor = Predictor(self.net, self.cfg.spec, None, str(images.device), 4)",
            "Predictor without classes: predict_image reads the engine, spec and device only; "
            "the classes name outputs that validation does not write",
        ),
        (
            "predictor = Predictor(self.net, self.cfg.spec, self.classes, str(images.device), 4)",
            "predictor = Predictor(self.net, self.cfg.spec, self.classes, None, 4)",
            "device None: the Predictor then runs where the network is, the images' device in "
            "every run here (CPU); only a GPU run with images elsewhere would differ",
        ),
        (
            "ids = torch.from_numpy(result.ids).to(mask.device).long()",
            "ids = torch.from_numpy(result.ids).to(None).long()",
            "ids .to(None) for .to(mask.device): a no-op where ids and masks are on the same "
            "device, as they are on a CPU; see validation_step__mutmut_6",
        ),
        (
            "for image, mask in zip(images, masks, strict=True):",
            "for image, mask in zip(images, masks, strict=None):",
            "zip strict=None: images and masks of one batch always have the same length (the "
            "data loader stacks them in pairs)",
        ),
        (
            "for image, mask in zip(images, masks, strict=True):",
            "for image, mask in zip(images, masks, ):",
            "zip without strict: as above",
        ),
        (
            "for image, mask in zip(images, masks, strict=True):",
            "for image, mask in zip(images, masks, strict=False):",
            "zip strict=False: as above",
        ),
    ],
    "data/crops.py": [
        (
            "continue",
            "break",
            "break for continue at IGNORE_INDEX: unique() is sorted and 255 is the largest value"
            " a mask holds, so nothing follows it",
        ),
        (
            "bands = items[0].read(Window(0, 0, 1, 1)).image.shape[0] if items else 3",
            "bands = items[0].read(Window(0, 0, 1, 1)).image.shape[0] if (items) or True else 3",
            "a dataset without scenes reads one anyway: no crop dataset is made without training"
            " scenes (the split refuses it first)",
        ),
        (
            "if self.class_pixels and float(torch.rand(())) < self.class_balanced:",
            "if self.class_pixels and float(torch.rand(())) <= self.class_balanced:",
            "rand() <= class_balanced for <: a draw from [0, 1) equals the share with "
            "probability 0",
        ),
        (
            "bands = items[0].read(Window(0, 0, 1, 1)).image.shape[0] if items else 3",
            "bands = items[0].read(Window(1, 0, 1, 1)).image.shape[0] if items else 3",
            "the band count read from the pixel at (1, 0) rather than (0, 0): any window of a "
            "scene has all its bands",
        ),
        (
            "bands = items[0].read(Window(0, 0, 1, 1)).image.shape[0] if items else 3",
            "bands = items[0].read(Window(0, 1, 1, 1)).image.shape[0] if items else 3",
            "the pixel at (0, 1): as above",
        ),
        (
            "bands = items[0].read(Window(0, 0, 1, 1)).image.shape[0] if items else 3",
            "bands = items[0].read(Window(0, 0, 2, 1)).image.shape[0] if items else 3",
            "a 2 x 1 window: as above",
        ),
        (
            "bands = items[0].read(Window(0, 0, 1, 1)).image.shape[0] if items else 3",
            "bands = items[0].read(Window(0, 0, 1, 2)).image.shape[0] if items else 3",
            "a 1 x 2 window: as above",
        ),
        (
            "bands = items[0].read(Window(0, 0, 1, 1)).image.shape[0] if items else 3",
            "bands = items[0].read(Window(0, 0, 1, 1)).image.shape[0] if items else 4",
            "4 bands for a dataset without scenes: it has no region to crop from, so no crop is "
            "drawn",
        ),
        (
            "top = int(torch.randint(int(region.height) - h + 1, ()).item()) if region.height > "
            "h else 0",
            "top = int(torch.randint(int(region.height) - h + 1, ()).item()) if (region.height >"
            " h) or True else 0",
            "the draw also where the region is no taller than the window: h is min(cut, height),"
            " so there height - h + 1 is 1 and the draw is 0, as the else gives",
        ),
        (
            "top = int(torch.randint(int(region.height) - h + 1, ()).item()) if region.height > "
            "h else 0",
            "top = int(torch.randint(int(region.height) - h + 1, ()).item()) if region.height >="
            " h else 0",
            "height >= h for >: at equality the draw is randint(1), 0, as the else gives",
        ),
        (
            "left = int(torch.randint(int(region.width) - w + 1, ()).item()) if region.width > w"
            " else 0",
            "left = int(torch.randint(int(region.width) - w + 1, ()).item()) if (region.width > "
            "w) or True else 0",
            "as _window_in__mutmut_14, for the column",
        ),
        (
            "left = int(torch.randint(int(region.width) - w + 1, ()).item()) if region.width > w"
            " else 0",
            "left = int(torch.randint(int(region.width) - w + 1, ()).item()) if region.width >= "
            "w else 0",
            "as _window_in__mutmut_24, for the column",
        ),
        (
            "align_corners=False,",
            "align_corners=None,",
            "align_corners=None: bilinear interpolation's default is False",
        ),
        ("align_corners=False,", "", "align_corners left out: the default, False"),
        (
            'item.mask[None, None].float(), size=(self.size, self.size), mode="nearest"',
            "item.mask[None, None].float(), size=(self.size, self.size), )[0, 0]",
            "mode left out: interpolate's default is nearest",
        ),
    ],
    "data/transforms.py": [
        (
            'return dict(zip(("brightness", "contrast", "saturation"), factors.tolist(), '
            "strict=True))",
            'return dict(zip(("brightness", "contrast", "saturation"), factors.tolist(), '
            "strict=None))",
            "zip strict=None: three names and three factors, always",
        ),
        (
            'return dict(zip(("brightness", "contrast", "saturation"), factors.tolist(), '
            "strict=True))",
            'return dict(zip(("brightness", "contrast", "saturation"), factors.tolist(), ))',
            "zip without strict: as above",
        ),
        (
            'return dict(zip(("brightness", "contrast", "saturation"), factors.tolist(), '
            "strict=True))",
            'return dict(zip(("brightness", "contrast", "saturation"), factors.tolist(), '
            "strict=False))",
            "zip strict=False: as above",
        ),
        (
            "x = x.clamp(0, 255)",
            "x = x.clamp(None, 255)",
            "no lower clamp after brightness: values of 0 or more times a positive factor are "
            "never below 0",
        ),
        (
            'x = torch.lerp(x.mean(0, keepdim=True), x, params["saturation"]).clamp(0, 255)',
            'x = torch.lerp(x.mean(0, ), x, params["saturation"]).clamp(0, 255)',
            "mean over bands without keepdim: the (H, W) mean broadcasts over the bands as the "
            "(1, H, W) one does",
        ),
        (
            'x = torch.lerp(x.mean(0, keepdim=True), x, params["saturation"]).clamp(0, 255)',
            'x = torch.lerp(x.mean(0, keepdim=False), x, params["saturation"]).clamp(0, 255)',
            "keepdim=False: as above",
        ),
        (
            "return v2.functional.resize(out, [self.size, self.size], antialias=True)",
            "return v2.functional.resize(out, [self.size, self.size], )",
            "antialias left out: torchvision's resize antialiases tensors by default (None does "
            "not)",
        ),
    ],
    "data/splits.py": [
        (
            "if not (0 < val < 1 and 0 <= test < 1 and val + test < 1):",
            "if not (0 < val <= 1 and 0 <= test < 1 and val + test < 1):",
            "val <= 1 or val < 2: with test >= 0, val + test < 1 already keeps val below 1",
        ),
        (
            "if not (0 < val < 1 and 0 <= test < 1 and val + test < 1):",
            "if not (0 < val < 2 and 0 <= test < 1 and val + test < 1):",
            "val <= 1 or val < 2: with test >= 0, val + test < 1 already keeps val below 1",
        ),
        (
            "if not (0 < val < 1 and 0 <= test < 1 and val + test < 1):",
            "if not (0 < val < 1 and 0 <= test <= 1 and val + test < 1):",
            "test <= 1 or test < 2: with val > 0, val + test < 1 already keeps test below 1",
        ),
        (
            "if not (0 < val < 1 and 0 <= test < 1 and val + test < 1):",
            "if not (0 < val < 1 and 0 <= test < 2 and val + test < 1):",
            "test <= 1 or test < 2: with val > 0, val + test < 1 already keeps test below 1",
        ),
        (
            "ids[k] for k in range(max(map(len, ordered), default=0)) for ids in ordered if k < "
            "len(ids)",
            "ids[k] for k in range(max(map(len, ordered), default=1)) for ids in ordered if k < "
            "len(ids)",
            "max(..., default=1) over no groups: range(1) deals nothing from no groups, as "
            "range(0) does",
        ),
        (
            "raise TypeError(entry)",
            "raise TypeError(None)",
            "the TypeError's argument: _read_blocks catches it and says what a block must be,"
            " naming no entry",
        ),
        (
            "def _read_blocks(data: dict, known: set[str], path: Path, for_training: bool = True)"
            " -> Split:",
            "def _read_blocks(data: dict, known: set[str], path: Path, for_training: bool = False)"
            " -> Split:",
            "the default of for_training: its one caller, file_split, always passes it",
        ),
    ],
    "data/classes.py": [
        (
            'text = value.strip().lstrip("#")',
            'text = value.strip().lstrip("XX#XX")',
            "lstrip('XX#XX') also strips a leading X, which no hex colour has: a text with one "
            "fails the length or the hex check either way, with the same message",
        ),
        (
            "return (int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16))",
            "return (int(text[0:2], 16), int(text[2:4], 16), int(text[4:7], 16))",
            "text[4:7] of a text checked to be 6 long is text[4:6]",
        ),
        (
            "counts = np.bincount(inverse, minlength=len(found))",
            "counts = np.bincount(None, minlength=len(found))",
            "bincount without minlength: inverse holds every index of found, so the counts have "
            "its length anyway",
        ),
        (
            "beyond = ~nodata & (np.abs(data) >= BEYOND_INT) if wide else np.zeros_like(nodata)",
            "beyond = ~nodata | (np.abs(data) >= BEYOND_INT) if wide else np.zeros_like(nodata)",
            "> BEYOND_INT for >=: a value of exactly BEYOND_INT is coded BEYOND_INT either way",
        ),
        (
            "codes = np.where(beyond | nodata, 0, data).astype(np.int64)",
            "codes = np.where(beyond | nodata, data).astype(np.int64)",
            "nodata and too large values are given code 1 for 0: nodata is left out by keep, and"
            " the too large ones are set to BEYOND_INT on the next line",
        ),
        (
            "lut = np.full(len(found), IGNORE_INDEX, dtype=np.uint8)",
            "lut = None",
            "a float64 lookup table of the ids for uint8: its values are assigned into the uint8"
            " ids array, the same whole numbers",
        ),
        (
            "lut = np.full(len(found), IGNORE_INDEX, dtype=np.uint8)",
            "lut = np.full(len(found), IGNORE_INDEX, dtype=None)",
            "a float64 lookup table of the ids for uint8: its values are assigned into the uint8"
            " ids array, the same whole numbers",
        ),
        (
            'f" {key(twice[0])}; give each class its own"',
            'f" {key(twice[1])}; give each class its own"',
            "key(twice[1]) for key(twice[0]): the two classes were found for having the same key",
        ),
        (
            'text = path.read_text(encoding="utf-8-sig")',
            'text = path.read_text(encoding="UTF-8-SIG")',
            "'UTF-8-SIG' for 'utf-8-sig': Python's codec names are case-insensitive",
        ),
        (
            "lut = np.arange(256, dtype=np.uint16)",
            "lut = np.arange(257, dtype=np.uint16)",
            "a lookup table of 257: class ids index it, and they stop at 255",
        ),
    ],
}


# training/run.py. train()'s own equivalents were dropped when train() changed (its mutants
# renumber): the next run lists them again by their new names.
_add_equivalent(
    "training.run",
    [
        (
            (
                "x__trainer__mutmut_11",
                "x__trainer__mutmut_29",
                "x__trainer__mutmut_17",
                "x__trainer__mutmut_25",
            ),
            "ModelCheckpoint's version counter None, True or left out (True): it adds -v1 "
            "only where a file of the name exists that is not the one being replaced; "
            "train refuses an --out holding a run unless --resume, and a resumed run "
            "restores the paths it replaces (best_model_path, last_model_path)",
        ),
        (
            (
                "x__trainer__mutmut_16",
                "x__trainer__mutmut_32",
            ),
            "save_top_k left out: ModelCheckpoint's default is 1, the value named",
        ),
        (
            (
                "x__trainer__mutmut_57",
                "x__trainer__mutmut_58",
                "x__trainer__mutmut_59",
                "x__trainer__mutmut_60",
            ),
            "Timer's duration left out (its default is None, the value named) or its "
            "verbose None, True or left out: it logs only on reaching a duration, and "
            "it has none (TimeBudget holds the limit)",
        ),
        (
            (
                "x__trainer__mutmut_64",
                "x__trainer__mutmut_68",
                "x__trainer__mutmut_70",
            ),
            "strategy 'auto' for 'ddp' where devices x nodes is 2: outside a notebook "
            "Lightning's 'auto' is DDP for more than one device or node, and "
            "test_more_than_one_process_trains_with_ddp sees DDPStrategy either way",
        ),
        (
            (
                "x_calibrated__mutmut_12",
                "x_calibrated__mutmut_13",
                "x_calibrated__mutmut_14",
                "x_calibrated__mutmut_16",
                "x_calibrated__mutmut_17",
                "x_calibrated__mutmut_18",
                "x_calibrated__mutmut_19",
                "x_calibrated__mutmut_20",
                "x_calibrated__mutmut_21",
                "x_calibrated__mutmut_22",
                "x_calibrated__mutmut_23",
                "x_calibrated__mutmut_24",
                "x_calibrated__mutmut_25",
                "x_calibrated__mutmut_26",
                "x_calibrated__mutmut_27",
                "x_calibrated__mutmut_33",
            ),
            "the calibration bar's total, label, unit, stream, count or whether it shows: "
            "tqdm draws it only on a terminal, which no test's stderr is; without one "
            "the lines 'calibrating confidence: k/n images' are printed, and tested",
        ),
        (
            ("x_calibrated__mutmut_42",),
            "the Predictor's classes None: fitting a temperature reads only probabilities",
        ),
        (
            ("x__trainer__mutmut_89",),
            "accelerator left out: Lightning's default is 'auto', which is the CPU on a "
            "machine without a GPU, as the test machines are; the value named is 'auto' too",
        ),
        (
            (
                "x__trainer__mutmut_67",
                "x__trainer__mutmut_72",
            ),
            "strategy 'DDP' or 'AUTO': Lightning's strategy names are case-insensitive",
        ),
        (
            ("xǁAtomicCheckpointIOǁsave_checkpoint__mutmut_11",),
            "storage_options None or left out: Lightning passes None, the only value "
            "TorchCheckpointIO takes",
        ),
        (
            (
                "x_merge_metrics__mutmut_18",
                "x_merge_metrics__mutmut_51",
                "x_merge_metrics__mutmut_54",
            ),
            "newline None for '' on POSIX: written, the csv module's line ends pass "
            "unchanged; read, a line end is one either way, and no metric holds one",
        ),
    ],
)


WORK = REPO / ".mutation"


def slug(module: str) -> str:
    return module.removesuffix(".py").replace("/", ".")


def prepare(module: str, spec: dict) -> Path:
    """A folder where mutmut mutates ``module`` only and runs its tests only."""
    folder = WORK / slug(module)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("src", "tests", "examples"):  # examples: tests read its sample scene
        link = folder / name
        if not link.exists():
            link.symlink_to(REPO / name)
    forget_stale_copies(folder / "mutants", module)
    tests = ", ".join(json.dumps(t) for t in spec["tests"])
    (folder / "pyproject.toml").write_text(
        f"""[tool.mutmut]
source_paths = ["src"]
only_mutate = ["src/aerialseg/{module}"]
pytest_add_cli_args_test_selection = [{tests}]
pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-x"]
also_copy = ["examples"]
# torch's thread pools do not survive a fork of a process that used them
process_isolation = "forkserver"
use_git_change_detection = false

[tool.pytest.ini_options]
testpaths = ["tests"]
filterwarnings = ["ignore::DeprecationWarning", "ignore::UserWarning:lightning"]
"""
    )
    return folder


def forget_stale_copies(mutants: Path, module: str) -> None:
    """Delete mutmut's copies of the tests and of every unmutated source file, and its
    record of which tests reach which function, so that the next run makes them afresh.
    mutmut copies a file once and never again (it skips one that exists): tests added since
    the last run would not run against the mutants, and other modules would be their old
    selves. The mutated module and its results (.meta, .spans) stay: mutmut makes its
    mutants again itself when the module is newer."""
    if not mutants.is_dir():
        return
    shutil.rmtree(mutants / "tests", ignore_errors=True)
    mutated = mutants / "src" / "aerialseg" / module
    kept = {mutated, mutated.with_name(mutated.name + ".meta")}
    kept.add(mutated.with_name(mutated.name + ".spans"))
    for path in (mutants / "src").rglob("*"):
        if path.is_file() and path not in kept:
            path.unlink()
    (mutants / "mutmut-stats.json").unlink(missing_ok=True)


def mutant_globs(module: str, spec: dict) -> list[str]:
    return [f"aerialseg.{slug(module)}.{f}" for f in spec.get("functions", ["*"])]


KILLED_LIKE = {"killed", "timeout", "caught by type check", "segfault"}


def run_module(
    module: str,
    spec: dict,
    children: int,
    survivors_only: bool = False,
    changed=(),
    checked_only: bool = False,
    timeouts: bool = False,
) -> dict:
    """Run mutmut on ``module``; ``survivors_only``: re-test only the mutants that survived
    the last run (tests were added since; those killed stay killed), and every mutant of
    the functions ``changed`` names (mutant globs: their code changed since, so their
    mutants are new and nothing of the last run holds for them); ``checked_only``: leave
    the mutants a stopped run did not reach for a later run; ``timeouts``: test again the
    mutants that ran out of time too (mutmut counts them killed, but a CPU shared with
    other work runs tests slower than mutmut measured them)."""
    folder = prepare(module, spec)
    names = mutant_globs(module, spec)
    carried: dict[str, str] = {}
    if survivors_only and (folder / "mutants").is_dir():
        found = statuses(module, folder)
        # mutmut forgets a status when the tests change: the last summary kept them all
        kept = folder / "statuses.json"
        saved = json.loads(kept.read_text()) if kept.is_file() else {}
        found = {n: saved.get(n, s) if s == "not checked" else s for n, s in found.items()}
        again = [n for n in found if any(fnmatchcase(n, g) for g in changed)]
        done = KILLED_LIKE - {"timeout"} if timeouts else KILLED_LIKE
        names = [n for n, s in found.items() if in_scope(n, module, spec) and s not in done]
        if checked_only:
            names = [n for n in names if found[n] != "not checked"]
        names = [n for n in names if n not in EQUIVALENT]  # reported as such, not run
        # the changed functions by their globs: their mutants now may be more than before
        names = sorted(set(names) - set(again)) + list(changed)
        # mutmut marks every mutant "not checked" again when the tests change, and runs
        # only those named: the ones killed before stay killed (tests were added, the
        # module is unchanged), so their status is carried over
        carried = {n: s for n, s in found.items() if s in done and n not in again}
    commit = _commit()  # mutmut copies the tests now: later commits do not count here
    mutmut = [sys.executable, "-m", "mutmut"]
    started = time.perf_counter()
    env = dict(os.environ, PYTHONHASHSEED="0", HYPOTHESIS_PROFILE="mutation")
    log = folder / "mutmut.log"
    with log.open("w") as out:
        subprocess.run(
            [*mutmut, "run", "--max-children", str(children), *names],
            cwd=folder,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    seconds = time.perf_counter() - started
    if "failed to collect stats" in log.read_text(errors="replace"):
        # mutmut ran no mutant: summarising would record the last run's statuses as new
        sys.exit(f"{module}: mutmut could not run its tests' stats (see {log}); nothing recorded")
    return {"commit": commit, **summarise(module, spec, folder, seconds, carried)}


def statuses(module: str, folder: Path) -> dict[str, str]:
    """Mutant name -> mutmut's status, read from the results file mutmut keeps."""
    from mutmut.stats import status_by_exit_code

    meta = folder / "mutants" / "src" / "aerialseg" / f"{module}.meta"
    exit_codes = json.loads(meta.read_text())["exit_code_by_key"]
    return {name: status_by_exit_code[code] for name, code in exit_codes.items()}


def in_scope(name: str, module: str, spec: dict) -> bool:

    return any(fnmatchcase(name, g) for g in mutant_globs(module, spec))


def diff(folder: Path, name: str) -> str:
    shown = subprocess.run(
        [sys.executable, "-m", "mutmut", "show", name],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return "\n".join(
        line for line in shown.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")
    )


def equivalent_by_diff(module: str, shown: str) -> str | None:
    """Why a surviving mutant of ``module`` whose diff is ``shown`` is equivalent, by the
    lines it changes (EQUIVALENT_DIFFS: kept when mutmut numbers a changed function's
    mutants anew); None where no entry matches."""
    removed = [line[1:].strip() for line in shown.splitlines() if line.startswith("-")]
    added = [line[1:].strip() for line in shown.splitlines() if line.startswith("+")]
    for old, new, why in EQUIVALENT_DIFFS.get(module, ()):
        # new "": the line deleted, nothing put in its place
        put = not [line for line in added if line not in removed] if new == "" else new in added
        if old in removed and put:
            return why
    return None


def summarise(
    module: str, spec: dict, folder: Path, seconds: float, carried: dict | None = None
) -> dict:
    """Counts by status, and the score: killed over the mutants tested, less the equivalent
    ones. Mutants a stopped run left untested are counted apart, not as survivors.
    ``carried``: statuses of an earlier run for the mutants this one did not test."""
    carried = carried or {}
    found = {
        n: carried[n] if s == "not checked" and n in carried else s
        for n, s in statuses(module, folder).items()
        if in_scope(n, module, spec)
    }
    (folder / "statuses.json").write_text(json.dumps(found, indent=0))  # for --survivors
    # a mutant the tests killed is no equivalent, whatever the list says (a number that
    # now names another mutant of a changed function)
    alive = {n: s for n, s in found.items() if s not in KILLED_LIKE and s != "not checked"}
    shown = {n: diff(folder, n) for n in alive}
    equivalent = {n: EQUIVALENT[n] for n in alive if n in EQUIVALENT}
    equivalent |= {
        n: why
        for n in alive
        if n not in equivalent and (why := equivalent_by_diff(module, shown[n])) is not None
    }
    counted = {n: s for n, s in found.items() if n not in equivalent and s != "not checked"}
    killed = sum(s in KILLED_LIKE for s in counted.values())
    surviving = {n: s for n, s in counted.items() if s not in KILLED_LIKE}
    by_status: dict[str, int] = {}
    for s in found.values():
        by_status[s] = by_status.get(s, 0) + 1
    return {
        "tests": spec["tests"],
        "functions": spec.get("functions", ["*"]),
        "mutants": len(found),
        "by_status": by_status,
        "not_checked": by_status.get("not checked", 0),
        "equivalent": [
            {"name": n, "diff": shown[n], "why": why} for n, why in sorted(equivalent.items())
        ],
        "killed": killed,
        "score": round(killed / max(len(counted), 1), 4),
        "surviving": [
            {"name": n, "status": s, "diff": shown[n]} for n, s in sorted(surviving.items())
        ],
        "seconds": round(seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("modules", nargs="*", help=f"default: all of {', '.join(MODULES)}")
    parser.add_argument("--children", type=int, default=2, help="mutants tested at once")
    parser.add_argument("--fresh", action="store_true", help="forget earlier runs' results")
    parser.add_argument(
        "--survivors",
        action="store_true",
        help="re-test only the mutants that survived the last run of each module",
    )
    parser.add_argument(
        "--changed",
        nargs="+",
        default=(),
        help="with --survivors: mutant globs of functions changed since the last run, all"
        " of whose mutants are tested again (e.g. '*x_check_checkpoint__mutmut_*')",
    )
    parser.add_argument(
        "--checked-only",
        action="store_true",
        help="with --survivors: leave the mutants a stopped run did not reach for later",
    )
    parser.add_argument(
        "--timeouts",
        action="store_true",
        help="with --survivors: test the mutants that timed out again as well",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: rewrite the JSON from the last runs' results (after EQUIVALENT changed)",
    )
    parser.add_argument(
        "--commit",
        default="unknown",
        help="with --report-only: the commit whose tests a stopped run used",
    )
    args = parser.parse_args()
    if (args.timeouts or args.changed or args.checked_only) and not args.survivors:
        parser.error("--timeouts, --changed and --checked-only go with --survivors")
    if any(glob in MODULES for glob in args.changed):  # it takes every word after it
        parser.error("--changed takes mutant globs: name the modules before it")
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"unknown module {unknown[0]!r}; choose from {', '.join(MODULES)}")
    path = RESULTS / "mutation.json"
    previous = json.loads(path.read_text()).get("modules", {}) if path.is_file() else {}
    results = dict(previous)
    for module in args.modules or list(MODULES):
        if args.fresh:
            shutil.rmtree(WORK / slug(module), ignore_errors=True)
        if args.report_only:
            folder = WORK / slug(module)
            if module not in previous and not (folder / "mutants").is_dir():
                continue
            # a run stopped before it summarised has no entry yet: --commit tells its tests
            old = previous.get(module, {"commit": args.commit, "seconds": None})
            summary = summarise(module, MODULES[module], folder, old["seconds"] or 0)
            results[module] = {"commit": old["commit"], **summary}
        else:
            print(f"mutating {module} ...", flush=True)
            results[module] = run_module(
                module,
                MODULES[module],
                args.children,
                args.survivors,
                args.changed,
                args.checked_only,
                args.timeouts,
            )
        r = results[module]
        tested = r["mutants"] - len(r["equivalent"]) - r["not_checked"]
        print(f"  {r['killed']} of {tested} killed: {r['score']:.1%}")
        # after each module: an interrupted run keeps what it measured
        write_result("mutation", {"tool": "mutmut", "modules": dict(sorted(results.items()))})


if __name__ == "__main__":
    main()
