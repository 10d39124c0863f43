// gallery_copy.cpp — Gallery::copy_to (gallery.hpp): every row of one store
// (persons, images, detections, samples, rejections)
// into another, ids mapped, verified by an order- and id-independent digest.
#include <fmt/format.h>

#include <cstring>
#include <unordered_map>

#include "base/fsutil.hpp"
#include "identity/gallery_impl.hpp"

namespace faceq {
namespace {

// A multiset digest: the sum (mod 2^64) of the first 8 bytes of each row's
// sha256, with the row counts. Rows are compared by content, whatever their
// order or ids.
class RowDigest {
public:
    void add(const std::string& row) {
        const std::string h = sha256_hex(row.data(), row.size());
        sum_ += std::stoull(h.substr(0, 16), nullptr, 16);
    }
    std::string hex(const CopyResult& counts) const {
        return fmt::format("{}p{}s{}i{}d{}r-{:016x}", counts.persons, counts.samples, counts.images, counts.detections,
                           counts.rejections, sum_);
    }

private:
    std::uint64_t sum_ = 0;
};

// Fields joined with a separator no text holds (a unit separator).
class Row {
public:
    explicit Row(char kind) : s_(1, kind) {}
    template <typename T>
    Row& operator<<(const T& v) {
        s_ += '\x1f';
        s_ += fmt::format("{}", v);
        return *this;
    }
    template <typename T>
    Row& operator<<(const std::optional<T>& v) {
        return v ? (*this << *v) : (*this << "\x1e");  // a NULL
    }
    Row& operator<<(const Box& b) { return *this << b.x << b.y << b.width << b.height; }
    Row& operator<<(const Descriptor& d) {
        s_ += '\x1f';
        s_.append(reinterpret_cast<const char*>(d.data()), d.size() * sizeof(float));
        return *this;
    }
    const std::string& str() const { return s_; }

private:
    std::string s_;
};

std::string digest_rows(StoreReader& r, CopyResult& counts) {
    RowDigest digest;
    std::unordered_map<std::int64_t, std::string> person_key, image_key, detection_key;
    r.scan_person_rows([&](std::int64_t id, const NewPerson& p) {
        person_key[id] = p.public_id;
        digest.add((Row('P') << p.public_id << p.name << p.name_key << p.kind << p.now << p.updated_at).str());
        ++counts.persons;
    });
    r.scan_image_rows([&](std::int64_t id, const ImageFacts& f, std::int64_t analyzed_at) {
        image_key[id] = f.sha256 + '\x1f' + f.models;
        digest.add((Row('I') << f.path << f.sha256 << f.size << f.mtime << f.models << analyzed_at).str());
        ++counts.images;
    });
    auto person_of = [&](const std::optional<std::int64_t>& id) {
        return id ? std::optional<std::string>(person_key.at(*id)) : std::nullopt;
    };
    r.scan_detection_rows([&](std::int64_t id, const NewDetection& d) {
        Row row('D');
        row << image_key.at(d.image) << d.box;
        detection_key[id] = row.str();
        row << d.confidence << person_of(d.person) << to_string(d.decision) << d.distance << d.margin << d.age
            << d.gender << d.embedder << d.detected_at;
        if (d.descriptor) row << *d.descriptor;
        digest.add(row.str());
        ++counts.detections;
    });
    r.scan_sample_rows([&](const NewSample& s) {
        const auto detection = s.detection ? std::optional<std::string>(detection_key.at(*s.detection)) : std::nullopt;
        digest.add((Row('S') << person_key.at(s.person) << s.embedder << s.descriptor << s.source_path
                             << s.source_sha256 << s.box << s.quality << detection << s.created_at)
                       .str());
        ++counts.samples;
    });
    r.scan_rejection_rows([&](const NewRejection& x) {
        const auto detection = x.detection ? std::optional<std::string>(detection_key.at(*x.detection)) : std::nullopt;
        Row row('R');
        row << person_key.at(x.person) << detection << x.embedder << to_string(x.decision) << x.had_sample
            << x.created_at;
        if (x.descriptor) row << *x.descriptor;
        digest.add(row.str());
        ++counts.rejections;
    });
    return digest.hex(counts);
}

}  // namespace

CopyResult Gallery::copy_to(Gallery& dest) {
    if (&dest == this) throw Error(ErrorKind::usage, "cannot copy a gallery into itself");
    std::scoped_lock lock(impl_->mu, dest.impl_->mu);
    CopyResult out;
    dest.impl_->write([&](StoreWriter& w) {
        out = CopyResult{};
        const GalleryStats there = w.counts();
        if (there.persons_known + there.persons_unknown + there.samples + there.images > 0)
            throw Error(
                ErrorKind::usage,
                fmt::format("'{}' already holds a gallery ({} persons, {} images); copy into an empty one",
                            dest.impl_->path.string(), there.persons_known + there.persons_unknown, there.images));
        std::unordered_map<std::int64_t, std::int64_t> persons, images, detections;
        impl_->store->read([&](StoreReader& r) {
            r.scan_person_rows([&](std::int64_t id, const NewPerson& p) { persons[id] = w.add_person(p); });
            r.scan_image_rows([&](std::int64_t id, const ImageFacts& f, std::int64_t analyzed_at) {
                const auto copied = w.add_image(f, analyzed_at);
                if (!copied)
                    throw Error(ErrorKind::database,
                                fmt::format("'{}' holds an image twice; nothing was copied", impl_->path.string()));
                images[id] = *copied;
            });
            r.scan_detection_rows([&](std::int64_t id, const NewDetection& d) {
                NewDetection copy = d;
                copy.image = images.at(d.image);
                if (d.person) copy.person = persons.at(*d.person);
                detections[id] = w.add_detection(copy);
            });
            r.scan_sample_rows([&](const NewSample& s) {
                NewSample copy = s;
                copy.person = persons.at(s.person);
                if (s.detection) copy.detection = detections.at(*s.detection);
                if (!w.add_sample(copy))
                    throw Error(ErrorKind::database,
                                fmt::format("'{}' holds a sample twice; nothing was copied", impl_->path.string()));
            });
            r.scan_rejection_rows([&](const NewRejection& x) {
                NewRejection copy = x;
                copy.person = persons.at(x.person);
                if (x.detection) copy.detection = detections.at(*x.detection);
                w.add_rejection(copy);
            });
            out.digest = digest_rows(r, out);
        });
        CopyResult written;
        const std::string written_digest = digest_rows(w, written);
        if (written_digest != out.digest)
            throw Error(ErrorKind::database,
                        fmt::format("the copy in '{}' does not read back as '{}' did (digest {} against {}); nothing "
                                    "was copied",
                                    dest.impl_->path.string(), impl_->path.string(), written_digest, out.digest));
    });
    dest.impl_->cache.invalidate();
    return out;
}

}  // namespace faceq
