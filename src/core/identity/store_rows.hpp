// store_rows.hpp — the gallery's rows read back into the store.hpp types,
// for both stores (sqlite_store.cpp, pg_store.cpp): one place knows which
// column of a query holds what. Private to the core.
//
// `Row` is the store's row: SQLite's Stmt or PostgreSQL's result row, both
// offering int64, opt_int64, real, opt_real, text, opt_text and is_null by
// column (0-based). `Describe` turns a column into a Descriptor (each store
// says its own errors). Each reader names the columns its query must select,
// in order. Errors: what the row's accessors throw. Thread-safety: none.
#pragma once

#include <cstdint>
#include <utility>

#include "faceq/identity/store.hpp"

namespace faceq::detail {

// Four integer columns from `first` on: x, y, w, h.
template <typename Row>
Box read_box(const Row& r, int first) {
    return Box{static_cast<int>(r.int64(first)), static_cast<int>(r.int64(first + 1)),
               static_cast<int>(r.int64(first + 2)), static_cast<int>(r.int64(first + 3))};
}

// Columns from `first` on: id, public_id, name, kind.
template <typename Row>
PersonRef read_ref(const Row& r, int first) {
    PersonRef ref;
    ref.id = r.int64(first);
    ref.public_id = r.text(first + 1);
    ref.name = r.opt_text(first + 2);
    ref.kind = r.text(first + 3);
    return ref;
}

// id, public_id, name, kind, created_at, updated_at, samples, detections, last seen.
template <typename Row>
PersonInfo read_info(const Row& r) {
    PersonInfo info;
    info.person = read_ref(r, 0);
    info.created_at = r.int64(4);
    info.updated_at = r.int64(5);
    info.samples = r.int64(6);
    info.detections = r.int64(7);
    info.last_seen = r.opt_int64(8);
    return info;
}

// id, public_id, name, name_key, kind, created_at, updated_at.
template <typename Row>
std::pair<std::int64_t, NewPerson> read_person_row(const Row& r) {
    return {r.int64(0), NewPerson{r.text(1), r.opt_text(2), r.opt_text(3), r.text(4), r.int64(5), r.int64(6)}};
}

// id, path, sha256, size, mtime, models (then analyzed_at, read by the caller).
template <typename Row>
ImageFacts read_image_row(const Row& r) {
    return ImageFacts{r.text(1), r.text(2), static_cast<std::uint64_t>(r.int64(3)), r.opt_int64(4), r.text(5)};
}

// id, image_id, box (4), confidence, person_id, decision, distance, margin,
// age, gender, embedder, descriptor, detected_at.
template <typename Row, typename Describe>
NewDetection read_detection_row(const Row& r, const Describe& describe) {
    NewDetection d;
    d.image = r.int64(1);
    d.box = read_box(r, 2);
    d.confidence = r.real(6);
    d.person = r.opt_int64(7);
    d.decision = parse_decision(r.text(8)).value_or(Decision::unknown);
    d.distance = r.opt_real(9);
    d.margin = r.opt_real(10);
    d.age = r.opt_real(11);
    d.gender = r.opt_text(12);
    if (!r.is_null(14)) {
        d.embedder = r.text(13);
        d.descriptor = describe(14);
    }
    d.detected_at = r.int64(15);
    return d;
}

// person_id, embedder, descriptor, source_path, source_sha256, box (4),
// quality, detection_id, created_at.
template <typename Row, typename Describe>
NewSample read_sample_row(const Row& r, const Describe& describe) {
    return NewSample{r.int64(0),     r.text(1), describe(2),     r.text(3),  r.text(4),
                     read_box(r, 5), r.real(9), r.opt_int64(10), r.int64(11)};
}

// detection id, sample id, image path, detected_at, box (4), age, gender,
// distance, decision, rejected.
template <typename Row>
PersonFace read_person_face(const Row& r) {
    PersonFace f;
    f.detection_id = r.int64(0);
    f.sample_id = r.opt_int64(1);
    f.image_path = r.text(2);
    f.detected_at = r.int64(3);
    f.box = read_box(r, 4);
    if (!r.is_null(8)) f.age = static_cast<float>(r.real(8));
    f.gender = r.opt_text(9);
    if (!r.is_null(10)) f.distance = static_cast<float>(r.real(10));
    f.decision = r.text(11);
    f.rejected = r.int64(12) != 0;
    return f;
}

// id, source_path, box (4), created_at, detection_id, embedder.
template <typename Row>
SampleInfo read_sample_info(const Row& r) {
    return SampleInfo{r.int64(0), r.text(1), read_box(r, 2), r.int64(6), r.opt_int64(7), r.text(8)};
}

// id, person_id, decision, embedder, descriptor.
template <typename Row, typename Describe>
DetectionFacts read_detection_facts(const Row& r, const Describe& describe) {
    DetectionFacts d;
    d.id = r.int64(0);
    d.person = r.opt_int64(1);
    d.decision = parse_decision(r.text(2)).value_or(Decision::unknown);
    if (!r.is_null(4)) {
        d.embedder = r.text(3);
        d.descriptor = describe(4);
    }
    return d;
}

// id, person_id, detection_id, embedder, descriptor, decision, had_sample, created_at.
template <typename Row, typename Describe>
NewRejection read_rejection_row(const Row& r, const Describe& describe) {
    NewRejection x;
    x.person = r.int64(1);
    x.detection = r.opt_int64(2);
    if (!r.is_null(4)) {
        x.embedder = r.text(3);
        x.descriptor = describe(4);
    }
    x.decision = parse_decision(r.text(5)).value_or(Decision::unknown);
    x.had_sample = r.int64(6) != 0;
    x.created_at = r.int64(7);
    return x;
}

}  // namespace faceq::detail
